"""Secrets and sessions: no usable default key, logout ends the session for good, an idle
timeout besides the absolute one, tokens revoked with the session, no caching of answers."""

import time
import uuid
from datetime import timedelta

import jwt
import pytest
from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from sqlalchemy import func, select

import config
from app import create_app
from app.extensions import db
from app.secret_key import SecretKeyMissing

OLD_DEFAULT_KEY = "dev-only-change-me"


def _production_app(database_url, tmp_path, **overrides):
    instance = tmp_path / "prod-instance"
    settings = {"SQLALCHEMY_DATABASE_URI": database_url, "INSTANCE_DIR": str(instance),
                "MAIL_DIR": str(instance / "mail"), "UPLOAD_DIR": str(instance / "uploads"),
                "FAB_UPDATE_PERMS": False, "REDIS_URL": "", "RATELIMIT_STORAGE_URI": "memory://"}
    settings.update(overrides)
    return create_app(config.Config, **settings)


def _forged_cookie(user_id, key=OLD_DEFAULT_KEY):
    forger = Flask("forger")
    forger.secret_key = key
    serializer = SecureCookieSessionInterface().get_signing_serializer(forger)
    return serializer.dumps({"_user_id": str(user_id), "_fresh": True})


def _forged_token(user_id, key=OLD_DEFAULT_KEY):
    now = int(time.time())
    return jwt.encode({"sub": str(user_id), "type": "access", "fresh": True, "iat": now,
                       "nbf": now, "exp": now + 600, "jti": uuid.uuid4().hex}, key,
                      algorithm="HS256")


@pytest.mark.parametrize("key", [None, "", OLD_DEFAULT_KEY, "kort-nyckel"])
def test_a_start_outside_the_embedded_set_up_refuses_without_a_real_key(database_url, tmp_path,
                                                                         key):
    with pytest.raises(SecretKeyMissing, match="SECRET_KEY"):
        _production_app(database_url, tmp_path, SECRET_KEY=key, EMBEDDED=False)


def test_a_real_key_starts(database_url, tmp_path):
    flask_app = _production_app(database_url, tmp_path, SECRET_KEY="x" * 40, EMBEDDED=False)
    assert flask_app.secret_key == "x" * 40


def test_the_embedded_start_makes_a_random_key_once_and_reuses_it(database_url, tmp_path):
    first = _production_app(database_url, tmp_path, EMBEDDED=True)
    key_file = tmp_path / "prod-instance" / "secret_key"
    assert key_file.exists() and oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert first.secret_key not in ("", OLD_DEFAULT_KEY) and len(first.secret_key) >= 32
    second = _production_app(database_url, tmp_path, EMBEDDED=True)
    assert second.secret_key == first.secret_key


def test_a_cookie_or_token_signed_with_the_old_default_key_is_refused(database_url, tmp_path):
    flask_app = _production_app(database_url, tmp_path, EMBEDDED=True)
    with flask_app.app_context():
        admin = flask_app.appbuilder.sm.find_user(username="admin")
        admin_id = admin.id
    client = flask_app.test_client()
    client.set_cookie("session", _forged_cookie(admin_id))
    assert client.get("/api/v1/menu/").status_code == 401
    assert client.get("/users/list/").status_code in (302, 303, 401, 403)
    token = _forged_token(admin_id)
    answer = flask_app.test_client().get("/api/v1/people/",
                                         headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401


# --- logout, idle and absolute timeouts, tokens ----------------------------------------------

def _copy_of_session_cookie(test_client):
    return test_client.get_cookie("session").value


def test_a_session_cookie_copied_before_logout_no_longer_works(app, login):
    browser = login("Servicecenter")
    copied = _copy_of_session_cookie(browser)
    assert browser.get("/api/v1/menu/").status_code == 200
    browser.get("/logout/")
    thief = app.test_client()
    thief.set_cookie("session", copied)
    assert thief.get("/api/v1/menu/").status_code == 401
    assert thief.get("/stock/cards/list/").status_code in (302, 303, 401, 403)


def test_logout_ends_the_api_tokens_too(app, login, api_headers):
    headers = api_headers("Servicecenter")
    assert app.test_client().get("/api/v1/menu/", headers=headers).status_code == 200
    login("Servicecenter").get("/logout/")
    assert app.test_client().get("/api/v1/menu/", headers=headers).status_code == 401


def test_a_password_change_ends_the_other_sessions_and_tokens(app, login, api_headers):
    from app import passwords

    headers = api_headers("Chef")
    other_pc = login("Chef")
    passwords.set_password(app.appbuilder.sm.find_user(username="chef"), "Nytt-losenord-2027")
    assert other_pc.get("/api/v1/menu/").status_code == 401
    assert app.test_client().get("/api/v1/menu/", headers=headers).status_code == 401


def test_an_idle_session_ends_after_the_idle_timeout(app, login, set_now):
    start = set_now("2026-12-01T08:00:00")
    browser = login("Servicecenter")
    set_now(start + timedelta(minutes=29))
    assert browser.get("/api/v1/menu/").status_code == 200  # used: the idle time starts again
    set_now(start + timedelta(minutes=58))
    assert browser.get("/api/v1/menu/").status_code == 200
    set_now(start + timedelta(minutes=58 + 31))
    assert browser.get("/api/v1/menu/").status_code == 401
    page = browser.get("/login/")
    assert "inaktivitet" in page.get_data(as_text=True)


def test_a_session_in_use_still_ends_after_the_absolute_lifetime(app, login, set_now):
    start = set_now("2026-12-01T08:00:00")
    browser = login("Servicecenter")
    for minutes in range(20, 8 * 60, 20):
        set_now(start + timedelta(minutes=minutes))
        assert browser.get("/api/v1/menu/").status_code == 200
    set_now(start + timedelta(hours=8, minutes=5))
    assert browser.get("/api/v1/menu/").status_code == 401


class TestIdleTimeoutSetting:
    @pytest.fixture
    def app_config(self):
        return {"SESSION_IDLE_MINUTES": 5}

    def test_the_idle_timeout_is_configurable(self, app, login, set_now):
        start = set_now("2026-12-01T08:00:00")
        browser = login("Chef")
        set_now(start + timedelta(minutes=6))
        assert browser.get("/api/v1/menu/").status_code == 401


@pytest.mark.parametrize("path", ["/api/v1/menu/", "/stock/cards/list/", "/"])
def test_answers_with_personal_data_are_not_stored(login, path):
    answer = login("Servicecenter").get(path)
    assert answer.headers.get("Cache-Control") == "no-store"


def test_the_demo_logins_are_never_loaded_outside_the_embedded_start(database_url, tmp_path):
    from models import Person

    flask_app = _production_app(database_url, tmp_path, SECRET_KEY="k" * 48)
    with flask_app.app_context():
        people = db.session.execute(select(func.count(Person.id))).scalar()
    result = flask_app.test_cli_runner().invoke(args=["reservkort", "demo"])
    assert result.exit_code == 1 and "make run" in result.output
    with flask_app.app_context():
        assert db.session.execute(select(func.count(Person.id))).scalar() == people
