"""The application factory."""

import logging
import os
from pathlib import Path

from flask import Flask
from flask_appbuilder import AppBuilder

from app.extensions import csrf, database_url, db, migrate

HERE = Path(__file__).resolve().parent
MIGRATIONS = HERE.parent / "migrations"


# FAB warns about its own security tables' filters on every start; nothing to act on.
logging.getLogger("flask_appbuilder.models.filters").setLevel(logging.ERROR)


class _NoUserYetFilter(logging.Filter):
    """FAB warns "No user yet created" on the first start, before `reservkort init`/`demo` (or
    `create-user`) made the logins: it looks like a failure and asks for a command we do not
    use."""

    def filter(self, record):
        return not record.getMessage().startswith("No user yet created")


logging.getLogger("flask_appbuilder.security.manager").addFilter(_NoUserYetFilter())


def create_app(config=None, **overrides) -> Flask:
    """Build the app. `config` is a config class or import path; `overrides` win over it."""
    flask_app = Flask(__name__, instance_path=os.environ.get("RESERVKORT_INSTANCE"))
    flask_app.config.from_object(config or os.environ.get("RESERVKORT_CONFIG", "config.Config"))
    flask_app.config.update(overrides)
    _apply_defaults(flask_app)

    db.init_app(flask_app)
    migrate.init_app(flask_app, db, directory=str(MIGRATIONS))
    csrf.init_app(flask_app)  # before AppBuilder, so its REST API blueprints are exempted

    with flask_app.app_context():
        import models  # noqa: F401  (registers every table on the shared metadata)
        from app.bootstrap import schema_ready

        if not schema_ready(db.engine):
            # Before the first migration (e.g. `flask db upgrade` itself) there is nowhere to
            # write permissions yet.
            flask_app.config["FAB_UPDATE_PERMS"] = False
        appbuilder = AppBuilder()
        appbuilder.init_app(flask_app, db.session)
        _register_views(appbuilder)
        flask_app.appbuilder = appbuilder

    from app import (
        assets,
        cli,
        client_input,
        errors,
        logs,
        metrics,
        security_audit,
        sessions,
        web_security,
    )
    from views.health import blueprint as health_blueprint

    errors.install_database_outage_handling(flask_app)
    logs.install(flask_app)
    metrics.install(flask_app)
    flask_app.register_blueprint(health_blueprint)
    cli.register(flask_app)
    errors.install(flask_app)
    web_security.install(flask_app)
    sessions.install(flask_app)
    client_input.install(flask_app)
    security_audit.install(db)
    assets.install(flask_app)
    _register_hooks(flask_app)
    return flask_app


def warm_up(flask_app: Flask) -> None:
    """What a web worker reads and builds before its first request, so that no request waits
    for it: the protected people's masks (app.access; about a second for a national register,
    then kept while their generation holds). A database that is not there yet is logged and
    left to the first request."""
    from sqlalchemy.exc import SQLAlchemyError

    from app import access

    with flask_app.app_context():
        try:
            access.protected_identities()
        except SQLAlchemyError as exc:
            logging.getLogger("reservkort.database").warning(
                "warm-up skipped, the database is not answering (%s)", type(exc).__name__)
        finally:
            db.session.remove()


def _apply_defaults(flask_app: Flask) -> None:
    from app.roles import roles

    cfg = flask_app.config
    cfg["SQLALCHEMY_DATABASE_URI"] = database_url(cfg["SQLALCHEMY_DATABASE_URI"])
    if not cfg.get("FAB_ROLES"):
        cfg["FAB_ROLES"] = roles(admin_may_operate=cfg.get("ADMIN_MAY_OPERATE", False))
    cfg["BABEL_TRANSLATION_DIRECTORIES"] = str(HERE / "translations")
    validator = cfg.get("FAB_PASSWORD_COMPLEXITY_VALIDATOR")
    if isinstance(validator, str):
        # FAB calls it: an import path in the configuration becomes the function.
        from werkzeug.utils import import_string

        cfg["FAB_PASSWORD_COMPLEXITY_VALIDATOR"] = import_string(validator)
    for key in ("INSTANCE_DIR", "MAIL_DIR", "UPLOAD_DIR"):
        Path(cfg[key]).mkdir(parents=True, exist_ok=True)
    from app.secret_key import ensure_secret_key

    ensure_secret_key(cfg)
    from app.audit import ensure_key

    ensure_key(flask_app)  # the audit seal's key, generated on first start if none is given


def _register_views(appbuilder) -> None:
    from views import register_all

    register_all(appbuilder)


def _register_hooks(flask_app: Flask) -> None:
    hooks = flask_app.config.get("RESERVKORT_APP_HOOKS", ())
    for hook in hooks:
        hook(flask_app)
