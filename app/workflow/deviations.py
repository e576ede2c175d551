"""Deviations (avvikelser): created by people or sweeps, followed up, reported to managers."""

from flask_babel import lazy_gettext as _l
from sqlalchemy import false, select

from app import clock, security
from app.errors import NotFound
from app.extensions import db
from app.validation import FieldError
from app.validation import hsa_id as valid_hsa_id
from app.workflow._common import actor, actor_user_id, changes, not_allowed, record
from app.workflow._tx import step
from models import (
    DEVIATION_TYPES,
    Deviation,
    DeviationNote,
    Issuance,
    Person,
    Unit,
    unit_managers,
)

SEE_ALL_ROLES = {"Admin", "Servicecenter"}
TYPE_SV = {
    "not_returned": "Reservkort ej återlämnat",
    "receipt_missing_blocked": "Spärrat: kvittens saknas",
    "card_lost": "Reservkort förlorat",
    "mail_receipt_not_returned": "Kvittens ej återsänd (rekommenderad post)",
    "manual": "Manuell",
}
STATUS_SV = {"open": "Öppen", "in_progress": "Under utredning", "closed": "Stängd"}


def _load(deviation_id) -> Deviation:
    deviation = db.session.get(Deviation, deviation_id)
    if deviation is None:
        raise NotFound("deviation", deviation_id)
    return deviation


@step
def create(type, description, issuance_id=None, person_hsa_id=None) -> Deviation:
    """A deviation about an issuance or a person; the unit is copied from the person."""
    if type not in DEVIATION_TYPES:
        raise FieldError("type", _l("Unknown deviation type."))
    description = str(description or "").strip()
    if type == "manual" and not description:
        raise FieldError("description", _l("Describe what happened."))
    issuance = db.session.get(Issuance, issuance_id) if issuance_id else None
    if issuance_id and issuance is None:
        raise NotFound("issuance", issuance_id)
    person = issuance.recipient if issuance else None
    if person_hsa_id:
        person = db.session.execute(
            select(Person).where(Person.hsa_id == valid_hsa_id(person_hsa_id, "person_hsa_id"))
        ).unique().scalar_one_or_none()
        if person is None:
            raise NotFound("person", person_hsa_id)
    deviation = Deviation(
        type=type, status="open", issuance_id=issuance.id if issuance else None,
        person_id=person.id if person else None, unit_id=person.unit_id if person else None,
        card_serial=issuance.card.serial if issuance else None, description=description or None,
        created_at=clock.now(), created_by_user_id=actor_user_id(),
    )
    db.session.add(deviation)
    db.session.flush()
    record("deviation.create", "deviation", deviation.id, None, {
        "type": type, "issuance_id": deviation.issuance_id, "person_id": deviation.person_id,
        "unit_id": deviation.unit_id, "description": deviation.description,
    })
    return deviation


@step
def add_note(deviation_id, text) -> DeviationNote:
    deviation = _load(deviation_id)
    text = str(text or "").strip()
    if not text:
        raise FieldError("text", _l("Write the note."))
    user_id, name = actor()
    note = DeviationNote(deviation_id=deviation.id, text=text, created_at=clock.now(),
                         author_user_id=user_id, author_name=name)
    db.session.add(note)
    before, after = {}, {}
    if deviation.status == "open":
        before, after = changes(deviation, status="in_progress")
    db.session.flush()
    record("deviation.note", "deviation", deviation.id, before, {**after, "note": text})
    return note


@step
def close(deviation_id) -> Deviation:
    deviation = _load(deviation_id)
    if deviation.status == "closed":
        raise not_allowed("close", "closed")
    before, after = changes(deviation, status="closed", closed_at=clock.now(),
                            closed_by_user_id=actor_user_id())
    record("deviation.close", "deviation", deviation.id, before, after)
    return deviation


def managed_unit_ids(user):
    """The units whose manager is this user's person (a select of unit ids)."""
    person = security.person_for_user(user)
    person_id = person.id if person else -1
    return select(unit_managers.c.unit_id).where(unit_managers.c.person_id == person_id)


def visible_unit_ids(user) -> frozenset | None:
    """Whose deviations the user sees: None for every unit (Servicecenter, Admin), otherwise
    the set of unit ids (a manager: the units they manage; anyone else: none)."""
    roles = security.user_roles(user) if user is not None else set()
    if roles & SEE_ALL_ROLES:
        return None
    if "Chef" in roles:
        return frozenset(db.session.execute(managed_unit_ids(user)).scalars())
    return frozenset()


def in_units(unit_ids):
    """The condition "the deviation belongs to one of these units" (None: every deviation),
    filtered on the column itself so the list and the counts use the unit index."""
    if unit_ids is None:
        return None
    if not unit_ids:
        return false()
    return Deviation.unit_id.in_(sorted(unit_ids))


def visibility(user):
    """The row-level condition for this user (None: no condition)."""
    return in_units(visible_unit_ids(user))


def visible_deviations(user):
    """Row-level: Servicecenter and Admin see all; a manager sees only their units' people."""
    query = select(Deviation).order_by(Deviation.created_at.desc(), Deviation.id.desc())
    condition = visibility(user)
    return query if condition is None else query.where(condition)


def _filtered(user, filters):
    query = visible_deviations(user)
    filters = filters or {}
    if filters.get("from"):
        query = query.where(Deviation.created_at >= _day_start(filters["from"]))
    if filters.get("to"):
        query = query.where(Deviation.created_at < _day_start(filters["to"], next_day=True))
    if filters.get("unit_id"):
        query = query.where(Deviation.unit_id == int(filters["unit_id"]))
    if filters.get("type"):
        query = query.where(Deviation.type == filters["type"])
    if filters.get("status"):
        query = query.where(Deviation.status == filters["status"])
    return query


def _day_start(value, next_day=False):
    from datetime import date, datetime, timedelta

    day = value if isinstance(value, date) else date.fromisoformat(str(value))
    if next_day:
        day += timedelta(days=1)
    local = datetime(day.year, day.month, day.day, tzinfo=clock.LOCAL_TZ)
    return clock.to_utc_naive(local)


REPORT_COLUMNS = ("id", "created_at", "type", "status", "person", "hsa_id", "unit", "card_serial",
                  "valid_until", "description", "closed_at")


def report_rows(user, filters=None, batch_size=500):
    """The rows of the deviation report, streamed (a batch at a time) for CSV/XLSX export."""
    visible = _filtered(user, filters).subquery()
    query = (
        select(visible.c.id, visible.c.created_at, visible.c.type, visible.c.status,
               Person.name, Person.hsa_id, Unit.name, visible.c.card_serial,
               Issuance.valid_until, visible.c.description, visible.c.closed_at)
        .select_from(visible)
        .outerjoin(Person, Person.id == visible.c.person_id)
        .outerjoin(Unit, Unit.id == visible.c.unit_id)
        .outerjoin(Issuance, Issuance.id == visible.c.issuance_id)
        .order_by(visible.c.created_at, visible.c.id)
        .execution_options(yield_per=batch_size)
    )
    for row in db.session.execute(query):
        values = dict(zip(REPORT_COLUMNS, row, strict=True))
        values["created_at"] = clock.isoformat(values["created_at"])
        values["closed_at"] = clock.isoformat(values["closed_at"])
        values["type_name"] = TYPE_SV.get(values["type"], values["type"])
        values["status_name"] = STATUS_SV.get(values["status"], values["status"])
        yield values

