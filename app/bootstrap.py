"""First-start set-up after the migrations: FAB's roles and permissions, organisation types."""

from flask import current_app
from flask_appbuilder.security.manager import BaseSecurityManager
from sqlalchemy import inspect, select, text

from app.extensions import db
from models import OrganisationType

DEFAULT_ORG_TYPES = {
    "region": "Region",
    "private_care_provider": "Privat vårdgivare",
    "municipality": "Kommun",
}


def schema_ready(engine) -> bool:
    """The migrations have run and the roles exist, so permissions can be synced."""
    if "ab_permission_view" not in inspect(engine).get_table_names():
        return False
    with engine.connect() as connection:
        return connection.execute(text("SELECT count(*) FROM ab_role")).scalar() > 0


def init_security_and_reference_data() -> None:
    """Idempotent: roles of FAB_ROLES, Admin and Public, every view's permissions, org types."""
    appbuilder = current_app.appbuilder
    # The SQLA manager's create_db would create tables outside the migrations; the base one only
    # creates the roles.
    BaseSecurityManager.create_db(appbuilder.sm)
    appbuilder.add_permissions(update_perms=True)
    default_count = current_app.config["DEFAULT_ATTESTERS_REQUIRED"]
    existing = set(db.session.execute(select(OrganisationType.code)).scalars())
    for code, name in DEFAULT_ORG_TYPES.items():
        if code not in existing:
            db.session.add(OrganisationType(code=code, name=name,
                                            attesters_required=default_count))
    db.session.commit()


class DeployError(Exception):
    """A deploy step failed; the message names the step."""


class _ErrorCounter:
    """Counts the errors a library logs instead of raising (FAB's permission sync does)."""

    def __init__(self, *names):
        import logging

        self.loggers = [logging.getLogger(name) for name in names]
        self.records = []
        counter = self

        class _Handler(logging.Handler):
            def emit(self, record):
                counter.records.append(record)

        self.handler = _Handler(level=logging.ERROR)

    def __enter__(self):
        for logger in self.loggers:
            logger.addHandler(self.handler)
        return self

    def __exit__(self, *exc):
        for logger in self.loggers:
            logger.removeHandler(self.handler)


def deploy(echo=print) -> None:
    """The deploy steps in their order: the migrations, then roles, permissions and reference
    data. Raises DeployError naming the first step that failed, including errors a library
    only logs."""
    from flask_migrate import upgrade

    steps = (
        ("migrate", upgrade),
        ("init", init_security_and_reference_data),
        ("permissions", _check_permissions),
    )
    for name, step in steps:
        with _ErrorCounter("flask_appbuilder", "flask_migrate", "alembic") as errors:
            try:
                step()
            except (Exception, SystemExit) as exc:  # flask_migrate logs and exits on failure
                db.session.rollback()
                logged = "; ".join(record.getMessage() for record in errors.records)
                raise DeployError(f"{name}: {logged or f'{type(exc).__name__}: {exc}'}") from exc
        if errors.records:
            db.session.rollback()
            first = errors.records[0]
            raise DeployError(f"{name}: {len(errors.records)} error(s) logged, the first: "
                              f"{first.getMessage()}")
        echo(f"{name}: ok")


def _check_permissions() -> None:
    """Every configured role exists and Admin holds permissions (what the sync should leave)."""
    sm = current_app.appbuilder.sm
    missing = [role for role in (*current_app.config["FAB_ROLES"], "Admin")
               if sm.find_role(role) is None]
    if missing:
        raise DeployError(f"roles missing after the permission sync: {', '.join(missing)}")
    if not sm.find_role("Admin").permissions:
        raise DeployError("the Admin role holds no permissions after the sync")
