"""Secrets and sessions: no usable default key, logout ends the session for good, an idle
timeout besides the absolute one, tokens revoked with the session, no caching of answers."""

import time
import uuid

import jwt
import pytest
from flask import Flask
from flask.sessions import SecureCookieSessionInterface

import config
from app import create_app
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
    answer = flask_app.test_client().get("/api/v1/security/users/",
                                         headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401
