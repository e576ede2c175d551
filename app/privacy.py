"""Protected identity: only staff cleared for it see such a person's name, personal identity
number and e-mail address; everyone else sees the HSA-id and a mask."""

from flask import current_app, g
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.extensions import db
from models import AccountLink

MASK = _l("Protected identity")
MASKED_PERSON_FIELDS = ("name", "personal_number", "email")


def has_clearance(user) -> bool:
    """Whether the login account is cleared to see people with protected identity."""
    if user is None or not getattr(user, "id", None):
        return False
    return bool(db.session.execute(
        select(AccountLink.protected_identity_clearance).where(AccountLink.user_id == user.id)
    ).scalar())


def current_user_cleared() -> bool:
    """The clearance of the logged-in user (browser session or API token), looked up once per
    request."""
    user = current_app.appbuilder.sm.current_user
    user_id = getattr(user, "id", None)
    cached = g.get("protected_identity_clearance")
    if cached is None or cached[0] != user_id:
        cached = g.protected_identity_clearance = (user_id, has_clearance(user))
    return cached[1]


def hidden(person, cleared: bool) -> bool:
    """Whether the person's details must be masked for someone with (or without) clearance."""
    return bool(person is not None and person.protected_identity and not cleared)


def person_view(person, cleared: bool) -> dict | None:
    """hsa_id, name and the flag; the name masked for a protected person unless cleared."""
    if person is None:
        return None
    return {
        "hsa_id": person.hsa_id,
        "name": str(MASK) if hidden(person, cleared) else person.name,
        "protected_identity": bool(person.protected_identity),
    }


def mask_rows(rows, cleared: bool) -> None:
    """Mask, in place, rows (dicts) of people with protected identity: the name becomes the
    mask, the personal identity number and e-mail address are left out."""
    if cleared:
        return
    for row in rows:
        if row.get("protected_identity"):
            for key in MASKED_PERSON_FIELDS:
                if key in row:
                    row[key] = str(MASK) if key == "name" else None
