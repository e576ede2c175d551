"""The deploy command runs its steps in order on a fresh database and fails loudly; gunicorn's
settings give each instance its own control socket, an access log and fitting timeouts."""

import os
import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from app import create_app
from app.access import redaction
from app.extensions import db
from config import TestConfig
from models import Person

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def fresh_app(tmp_path):
    instance = tmp_path / "instance"
    flask_app = create_app(TestConfig, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'new.db'}",
                           INSTANCE_DIR=str(instance), MAIL_DIR=str(instance / "mail"),
                           UPLOAD_DIR=str(instance / "uploads"))
    yield flask_app
    with flask_app.app_context():
        db.session.remove()
        db.engine.dispose()


def _deploy(flask_app):
    return flask_app.test_cli_runner().invoke(args=["reservkort", "deploy"])


def test_deploy_on_a_fresh_database_migrates_then_syncs_roles_and_permissions(fresh_app):
    result = _deploy(fresh_app)
    assert result.exit_code == 0, result.output
    assert "migrate: ok" in result.output and "permissions: ok" in result.output
    with fresh_app.app_context():
        sm = fresh_app.appbuilder.sm
        for role in fresh_app.config["FAB_ROLES"]:
            assert sm.find_role(role) is not None, role
            assert sm.find_role(role).permissions, role
    assert _deploy(fresh_app).exit_code == 0  # a second deploy changes nothing and passes


def test_deploy_fails_loudly_when_a_step_fails(fresh_app):
    assert _deploy(fresh_app).exit_code == 0
    with fresh_app.app_context():
        db.session.execute(text("DROP TABLE ab_permission_view_role"))
        db.session.commit()
    result = _deploy(fresh_app)
    assert result.exit_code == 1
    assert "Deploy failed at" in result.output, result.output


def test_deploy_fails_on_a_database_it_cannot_migrate(fresh_app):
    with fresh_app.app_context():
        db.session.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32))"))
        db.session.execute(text("INSERT INTO alembic_version VALUES ('9999_unknown')"))
        db.session.commit()
    result = _deploy(fresh_app)
    assert result.exit_code == 1
    assert "Deploy failed at migrate" in result.output


def _gunicorn_settings(**env):
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        return runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_each_gunicorn_instance_has_its_own_control_socket():
    from gunicorn.config import ControlSocket

    first = _gunicorn_settings(GUNICORN_BIND="127.0.0.1:8001")
    second = _gunicorn_settings(GUNICORN_BIND="127.0.0.1:8002")
    assert first["control_socket"] != second["control_socket"]
    assert first["control_socket"] != ControlSocket.default  # the per-user shared path
    assert first["accesslog"] == "-"
    assert 30 <= first["timeout"] <= 120
    assert first["graceful_timeout"] <= first["timeout"]


def test_gunicorn_runs_one_sync_worker_per_core_unless_told(monkeypatch):
    """Password checks are CPU-bound: more workers than cores only make them take turns."""
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert _gunicorn_settings()["workers"] == 4
    assert _gunicorn_settings()["worker_class"] == "sync"
    assert _gunicorn_settings(WEB_CONCURRENCY="7")["workers"] == 7
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert _gunicorn_settings()["workers"] == 2  # one slow request never holds them all


def test_a_gunicorn_worker_builds_the_protected_masks_before_its_first_request(
        app, monkeypatch):
    protected = set(db.session.execute(
        select(Person.id).where(Person.protected_identity.is_(True))).scalars())
    assert protected  # the demo has protected people
    monkeypatch.setattr(redaction, "_built", None)
    _gunicorn_settings()["post_worker_init"](SimpleNamespace(wsgi=app))
    token, identities = redaction._built
    assert identities.ids == protected
    # A request then finds them built: it reads the token, not the people.
    built = []
    monkeypatch.setattr(redaction, "Identities", lambda rows: built.append(rows))
    with app.test_request_context("/"):
        assert redaction.protected_identities() is identities
    assert built == []


def test_the_warm_up_leaves_an_absent_database_to_the_first_request(app, monkeypatch, caplog):
    def away(_known):
        raise OperationalError("SELECT", {}, Exception("connection refused"))

    monkeypatch.setattr(redaction, "_built", None)
    monkeypatch.setattr(redaction, "_protected_since", away)
    _gunicorn_settings()["post_worker_init"](SimpleNamespace(wsgi=app))
    assert redaction._built is None
    assert "warm-up skipped" in caplog.text
