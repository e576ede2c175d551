"""Deviations (avvikelser): created by people or sweeps, followed up, reported to managers."""

from datetime import date, datetime, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app import clock, labels
from app.access import scope
from app.errors import NotFound
from app.extensions import db
from app.validation import FieldError
from app.validation import hsa_id as valid_hsa_id
from app.workflow._common import actor, actor_user_id, changes, current_user, not_allowed, record
from app.workflow._tx import step
from models import (
    DEVIATION_STATUSES,
    DEVIATION_TYPES,
    Deviation,
    DeviationNote,
    Issuance,
    Person,
    Unit,
)


def _load(deviation_id, step_name) -> Deviation:
    """The deviation, if the logged-in user may handle it (a manager: their units only)."""
    deviation = db.session.get(Deviation, deviation_id)
    if deviation is None:
        raise NotFound("deviation", deviation_id)
    scope.require_unit(current_user(), deviation.unit_id, step=f"deviation.{step_name}")
    return deviation


@step
def create(type, description, issuance_id=None, person_hsa_id=None) -> Deviation:
    """A deviation about an issuance or a person, filed by the logged-in user; the unit is
    copied from the person. A manager may file one only in the units they reach."""
    issuance, person = _subject(type, description, issuance_id, person_hsa_id)
    scope.require_unit(current_user(), person.unit_id if person else None,
                       step="deviation.create")
    return _file(type, description, issuance, person)


@step
def file_for_issuance(type, description, issuance_id) -> Deviation:
    """A deviation filed by another workflow step as a consequence of that step (a card
    reported lost); who may take the step is that step's rule."""
    issuance, person = _subject(type, description, issuance_id, None)
    return _file(type, description, issuance, person)


def _subject(type, description, issuance_id, person_hsa_id):
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
    return issuance, person


def _file(type, description, issuance, person) -> Deviation:
    description = str(description or "").strip()
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
    deviation = _load(deviation_id, "note")
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
    deviation = _load(deviation_id, "close")
    if deviation.status == "closed":
        raise not_allowed("close", "closed")
    before, after = changes(deviation, status="closed", closed_at=clock.now(),
                            closed_by_user_id=actor_user_id())
    record("deviation.close", "deviation", deviation.id, before, after)
    return deviation


def visible_unit_ids(user) -> frozenset | None:
    """Whose deviations the user sees (the access policy's row scope): None for every unit,
    otherwise the set of unit ids."""
    return scope.visible_unit_ids(user)


def visibility(user):
    """The row-level condition for this user (None: no condition)."""
    return scope.in_units(Deviation.unit_id, visible_unit_ids(user))


def visible_deviations(user):
    """The deviations the user may see (the access policy's row scope), newest first."""
    query = select(Deviation).order_by(Deviation.created_at.desc(), Deviation.id.desc())
    return scope.deviations_in_scope(query, user)


# The report's dates: a wider range is no report anybody needs, and the day boundaries of
# 0001-01-01 or 9999-12-31 are not representable in the database's time zone arithmetic.
REPORT_FIRST_DAY = date(1900, 1, 1)
REPORT_LAST_DAY = date(2999, 12, 31)


def report_filters(raw) -> dict:
    """The report's filters checked: from/to (dates, YYYY-MM-DD, in range, from <= to),
    unit_id, type, status. A wrong value is a FieldError naming the field."""
    raw = raw or {}
    filters = {}
    for field in ("from", "to"):
        value = raw.get(field)
        if value in (None, ""):
            continue
        if not isinstance(value, date):
            try:
                value = date.fromisoformat(str(value).strip())
            except ValueError as exc:
                raise FieldError(field, _l("Give the date as YYYY-MM-DD.")) from exc
        if not REPORT_FIRST_DAY <= value <= REPORT_LAST_DAY:
            raise FieldError(field, _l("Give a date between %(first)s and %(last)s.")
                             % {"first": REPORT_FIRST_DAY.isoformat(),
                                "last": REPORT_LAST_DAY.isoformat()})
        filters[field] = value
    if "from" in filters and "to" in filters and filters["to"] < filters["from"]:
        raise FieldError("to", _l("The end date is before the start date."))
    unit = raw.get("unit_id")
    if unit not in (None, ""):
        if isinstance(unit, bool) or not str(unit).strip().isdigit() or int(unit) > 2**31 - 1:
            raise FieldError("unit_id", _l("Choose a unit from the list."))
        filters["unit_id"] = int(unit)
    for field, allowed, message in (
        ("type", DEVIATION_TYPES, _l("Choose a type from the list.")),
        ("status", DEVIATION_STATUSES, _l("Choose a status from the list.")),
    ):
        value = raw.get(field)
        if value in (None, ""):
            continue
        if value not in allowed:
            raise FieldError(field, message)
        filters[field] = value
    return filters


def _day_start(day, next_day=False):
    if next_day:
        day += timedelta(days=1)
    local = datetime(day.year, day.month, day.day, tzinfo=clock.LOCAL_TZ)
    return clock.to_utc_naive(local)


REPORT_COLUMNS = ("id", "created_at", "type", "status", "person", "hsa_id", "unit", "card_serial",
                  "valid_until", "description", "closed_at")


def report_query(user, filters=None):
    """The deviation report as one SELECT (the rows the user may see, filtered, oldest first),
    with the person's `protected_identity` so an export can mask. Filters are checked first
    (FieldError), so a bad value is refused before any file is started."""
    filters = report_filters(filters)
    query = (
        select(Deviation.id, Deviation.created_at, Deviation.type, Deviation.status,
               Person.name.label("person"), Person.hsa_id, Unit.name.label("unit"),
               Deviation.card_serial, Issuance.valid_until, Deviation.description,
               Deviation.closed_at, Person.protected_identity)
        .select_from(Deviation)
        .outerjoin(Person, Person.id == Deviation.person_id)
        .outerjoin(Unit, Unit.id == Deviation.unit_id)
        .outerjoin(Issuance, Issuance.id == Deviation.issuance_id)
        .order_by(Deviation.created_at, Deviation.id)
    )
    query = scope.deviations_in_scope(query, user)
    if "from" in filters:
        query = query.where(Deviation.created_at >= _day_start(filters["from"]))
    if "to" in filters:
        query = query.where(Deviation.created_at < _day_start(filters["to"], next_day=True))
    if "unit_id" in filters:
        query = query.where(Deviation.unit_id == filters["unit_id"])
    if "type" in filters:
        query = query.where(Deviation.type == filters["type"])
    if "status" in filters:
        query = query.where(Deviation.status == filters["status"])
    return query


def report_values(values: dict) -> dict:
    """One result row of `report_query`, as a dict, made the report's values (times as stored,
    naive UTC: the writer shows them; see app.exports)."""
    values["protected_identity"] = bool(values.get("protected_identity"))
    return values


def report_rows(user, filters=None, batch_size=500):
    """The rows of the deviation report in the current session, with the Swedish names of
    type and status (exports stream them with `app.exports`, on a connection of their own)."""
    from flask_babel import force_locale

    with force_locale("sv"):
        names = {key: dict(labels.choices(kind)) for key, kind in (
            ("type", "deviation_type"), ("status", "deviation_status"))}
    query = report_query(user, filters).execution_options(yield_per=batch_size)
    for row in db.session.execute(query):
        values = report_values(dict(row._mapping))
        values["type_name"] = names["type"].get(values["type"], values["type"])
        values["status_name"] = names["status"].get(values["status"], values["status"])
        yield values
