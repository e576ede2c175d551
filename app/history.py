"""The history of an issuance as a person reads it: who did what and when, from the audit log,
with people named instead of logins and HSA-ids, each name shown as the access policy allows
(masked for protected identity without clearance)."""

from flask_appbuilder.security.sqla.models import User
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app import access, display, labels
from app.extensions import db
from models import AccountLink, AuditEvent, Person

SYSTEM = _l("The system (automatic)")
# Fields of an issuance's audit rows that hold people's HSA-ids.
PEOPLE_FIELDS = ("recipient", "attesters")


def _events(issuance_id) -> list:
    return db.session.execute(
        select(AuditEvent).where(AuditEvent.entity == "issuance",
                                 AuditEvent.entity_id == issuance_id)
        .order_by(AuditEvent.at, AuditEvent.id)
    ).scalars().all()


def _people_of_logins(user_ids) -> dict:
    """login id -> the person it belongs to, or the login itself for one without a person."""
    if not user_ids:
        return {}
    found = dict(db.session.execute(
        select(AccountLink.user_id, Person).join(Person, Person.id == AccountLink.person_id)
        .where(AccountLink.user_id.in_(user_ids))).all())
    rest = set(user_ids) - set(found)
    if rest:
        found.update({user.id: user for user in db.session.execute(
            select(User).where(User.id.in_(rest))).scalars()})
    return found


def _people_by_hsa_id(events) -> dict:
    hsa_ids = set()
    for event in events:
        after = event.after if isinstance(event.after, dict) else {}
        for field in PEOPLE_FIELDS:
            value = after.get(field)
            hsa_ids.update(value if isinstance(value, list) else [value])
    hsa_ids.discard(None)
    if not hsa_ids:
        return {}
    return {person.hsa_id: person for person in db.session.execute(
        select(Person).where(Person.hsa_id.in_(hsa_ids))).unique().scalars()}


def _who(event, logins) -> str:
    if event.actor_user_id is None:
        return str(SYSTEM)
    who = logins.get(event.actor_user_id)
    if isinstance(who, Person):
        return access.display_name(who)
    if who is not None:  # a login without a person: its name as the policy shows logins
        return str(who).strip() or access.shown_login(who, who.username)
    return access.shown_login(event.actor_user_id, event.actor)


def _named(after: dict, people: dict) -> dict:
    """The people fields of an audit row with each HSA-id replaced by the person's name."""
    def name(hsa_id):
        person = people.get(hsa_id)
        return access.display_name(person) if person is not None else hsa_id

    named = dict(after)
    for field in PEOPLE_FIELDS:
        value = named.get(field)
        if isinstance(value, list):
            named[field] = [name(item) for item in value]
        elif value is not None:
            named[field] = name(value)
    return named


def issuance_history(issuance_id) -> list[dict]:
    """[{at, who, what, changes: [(label, value)]}], oldest first, in words: the time in
    Swedish wall-clock time to the minute, the action by its label."""
    events = _events(issuance_id)
    logins = _people_of_logins({e.actor_user_id for e in events if e.actor_user_id})
    people = _people_by_hsa_id(events)
    rows = []
    for event in events:
        after = access.audit_value(event, event.after)
        after = _named(after, people) if isinstance(after, dict) else after
        rows.append({"at": labels.moment(event.at), "who": _who(event, logins),
                     "what": labels.action(event.action), "changes": display.changes(after)})
    return rows
