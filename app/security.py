"""The security manager: FAB's database login, plus the link from a login to its person."""

from flask_appbuilder.security.sqla.manager import SecurityManager
from sqlalchemy import select

from app.extensions import db
from models import AccountLink, Person


class ReservkortSecurityManager(SecurityManager):
    def person_for_user(self, user) -> Person | None:
        if user is None or not getattr(user, "id", None):
            return None
        return db.session.execute(
            select(Person).join(AccountLink, AccountLink.person_id == Person.id)
            .where(AccountLink.user_id == user.id)
        ).scalar_one_or_none()


def person_for_user(user) -> Person | None:
    """The person a login account belongs to (attesters and managers need one)."""
    from flask import current_app

    return current_app.appbuilder.sm.person_for_user(user)


def user_roles(user) -> set[str]:
    return {role.name for role in getattr(user, "roles", [])}


def authenticate(username: str, password: str):
    """Check credentials with the same backend as the login page; the user or None."""
    from flask import current_app

    if not username or not password:
        return None
    return current_app.appbuilder.sm.auth_user_db(username, password)
