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
