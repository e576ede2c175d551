"""Protected identity: only staff cleared for it see such a person's details."""

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.extensions import db
from models import AccountLink

MASK = _l("Protected identity")


def current_user_cleared() -> bool:
    user = current_app.appbuilder.sm.current_user
    if user is None:
        return False
    return bool(db.session.execute(
        select(AccountLink.protected_identity_clearance).where(AccountLink.user_id == user.id)
    ).scalar())


def person_view(person, cleared: bool) -> dict | None:
    """hsa_id, name and the flag; the name masked for a protected person unless cleared."""
    if person is None:
        return None
    hidden = person.protected_identity and not cleared
    return {
        "hsa_id": person.hsa_id,
        "name": str(MASK) if hidden else person.name,
        "protected_identity": bool(person.protected_identity),
    }
