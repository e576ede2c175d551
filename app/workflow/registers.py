"""The registers kept by hand: people, units, pickup points and the attester count per
organisation type.

Each save takes a dict of the values given (an edit changes only those), checks them, and
writes the change with its audit row in one transaction. A wrong value is a FieldError naming
the field; an unknown id is NotFound.
"""

import re

from flask_appbuilder.security.sqla.models import Role
from flask_appbuilder.security.sqla.models import assoc_user_role as user_roles
from flask_babel import lazy_gettext as _l
from sqlalchemy import inspect, select

from app import access, clock, search, validation
from app.errors import NotFound
from app.extensions import db
from app.validation import FieldError
from app.workflow._common import record
from app.workflow._tx import step
from models import ORG_TYPES, AccountLink, OrganisationType, Person, PickupPoint, Unit

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_ATTESTERS, MAX_ATTESTERS = 1, 5
MAX_MIN_STOCK = 100_000


# --- people ----------------------------------------------------------------------------------

@step
def save_person(data, person_id=None) -> Person:
    """Add a person, or change the given fields of person `person_id`.

    Fields: hsa_id, personal_number (empty for none), name, email, unit_id,
    protected_identity, card_office_role (RA, ORA, KRA or LRA). A person's managers are those
    of their unit (`save_unit`'s manager_hsa_ids).
    """
    if "manager_hsa_id" in data:
        raise FieldError("manager_hsa_id", _l(
            "A person's managers are the managers of their unit: set them on the unit."))
    person = _load(Person, person_id, "person")
    # Only a login with clearance may change a protected person or lift the protection.
    access.check_person_edit(person)
    values = _person_values(data, creating=person is None)
    _check_unique(Person, person_id, values, ("hsa_id", "personal_number"))
    if person is None:
        values["created_at"] = clock.now()
    return _save(Person, "person", person, values)


def _person_values(data, creating) -> dict:
    values = {}
    if creating or "hsa_id" in data:
        values["hsa_id"] = validation.hsa_id(data.get("hsa_id"))
    if "personal_number" in data:
        values["personal_number"] = validation.personal_number(data.get("personal_number"))
    if creating or "name" in data:
        values["name"] = _text(data, "name", required=True, max_length=200)
    if "email" in data:
        values["email"] = _email(data.get("email"))
    if "unit_id" in data:
        values["unit_id"] = _reference(Unit, data.get("unit_id"), "unit_id")
    if "protected_identity" in data or creating:
        values["protected_identity"] = bool(data.get("protected_identity"))
    if "card_office_role" in data:
        values["card_office_role"] = _text(data, "card_office_role", max_length=16, upper=True)
    return values


def _email(value) -> str | None:
    email = str(value or "").strip()
    if email and not EMAIL_RE.match(email):
        raise FieldError("email", _l("Not an e-mail address."))
    return email or None


# --- units -----------------------------------------------------------------------------------

@step
def save_unit(data, unit_id=None) -> Unit:
    """Add a unit, or change the given fields. Fields: name, hsa_id (optional),
    org_type_code, parent_id (the unit it is part of; optional), manager_hsa_ids (the HSA-ids
    of its managers, each a person with a Chef login; the list replaces the old one)."""
    unit = _load(Unit, unit_id, "unit")
    managers = _managers(data["manager_hsa_ids"]) if "manager_hsa_ids" in data else None
    creating = unit is None
    values = {}
    if creating or "name" in data:
        values["name"] = _text(data, "name", required=True, max_length=200)
    if "hsa_id" in data:
        raw = str(data.get("hsa_id") or "").strip()
        values["hsa_id"] = validation.hsa_id(raw) if raw else None
    if creating or "org_type_code" in data:
        values["org_type_code"] = _org_type(data.get("org_type_code")).code
    if "parent_id" in data:
        values["parent_id"] = _reference(Unit, data.get("parent_id"), "parent_id")
        if values["parent_id"] is not None and values["parent_id"] == unit_id:
            raise FieldError("parent_id", _l("A unit cannot be part of itself."))
    if "parent_id" in values and values["parent_id"] is not None and unit_id is not None:
        _check_not_below(unit_id, values["parent_id"])
    _check_unique(Unit, unit_id, values, ("hsa_id",))
    unit = _save(Unit, "unit", unit, values)
    if managers is not None:
        _set_managers(unit, managers)
    return unit


MANAGER_FIELD = "manager_hsa_ids"
MAX_MANAGERS = 50


def _managers(value) -> list[Person]:
    """The people named by a list of HSA-ids, each with a login that has the role Chef."""
    from app.access.scope import MANAGER_ROLE

    if value is None:
        value = []
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise FieldError(MANAGER_FIELD, _l("Give a list of HSA-ids."))
    if len(value) > MAX_MANAGERS:
        raise FieldError(MANAGER_FIELD, _l("At most %(max)s managers.") % {"max": MAX_MANAGERS})
    hsa_ids = []
    for raw in value:
        if not isinstance(raw, str):
            raise FieldError(MANAGER_FIELD, _l("Give a list of HSA-ids."))
        if search.looks_like_a_name(raw):
            # A name instead: the message names the people it matches (whom the login may see).
            search.hsa_id_or_name(raw, MANAGER_FIELD, accept_unique=False)
        hsa_id = validation.hsa_id(raw, field=MANAGER_FIELD)
        if hsa_id not in hsa_ids:
            hsa_ids.append(hsa_id)
    people = {p.hsa_id: p for p in db.session.execute(
        select(Person).where(Person.hsa_id.in_(hsa_ids))).unique().scalars()} if hsa_ids else {}
    chefs = set(db.session.execute(
        select(Person.hsa_id)
        .join(AccountLink, AccountLink.person_id == Person.id)
        .join(user_roles, user_roles.c.user_id == AccountLink.user_id)
        .join(Role, Role.id == user_roles.c.role_id)
        .where(Person.hsa_id.in_(hsa_ids), Role.name == MANAGER_ROLE)
    ).scalars()) if hsa_ids else set()
    for hsa_id in hsa_ids:
        if hsa_id not in people:
            raise FieldError(MANAGER_FIELD, _l("No person with HSA-id %(hsa_id)s.")
                             % {"hsa_id": hsa_id})
        if hsa_id not in chefs:
            raise FieldError(MANAGER_FIELD, _l(
                "%(hsa_id)s has no login with the role Chef; a manager needs one "
                "(Admin creates it).") % {"hsa_id": hsa_id})
    return [people[hsa_id] for hsa_id in hsa_ids]


def _set_managers(unit, managers) -> None:
    """Replace the unit's managers; one audit row with the lists before and after."""
    before = sorted(unit.manager_hsa_ids)
    after = sorted(person.hsa_id for person in managers)
    if before == after:
        return
    unit.managers = sorted(managers, key=lambda person: person.hsa_id)
    db.session.flush()
    record("unit.managers", "unit", unit.id, before={MANAGER_FIELD: before},
           after={MANAGER_FIELD: after})


def _check_not_below(unit_id, parent_id) -> None:
    """A unit cannot be placed below itself or below one of its own sub-units."""
    from app.access.scope import units_below

    below = units_below(select(Unit.id.label("unit_id")).where(Unit.id == unit_id))
    if db.session.execute(select(Unit.id).where(Unit.id == parent_id, Unit.id.in_(below))
                          ).first():
        raise FieldError("parent_id", _l("A unit cannot be part of itself or of one of its "
                                         "own sub-units."))


def manager_labels(hsa_ids, cleared) -> list[tuple[str, str]]:
    """(hsa_id, label) of the given people, for the form's chosen managers; an unknown HSA-id
    keeps its own text as label (the save names it)."""
    from app import access

    hsa_ids = [str(value) for value in hsa_ids][:MAX_MANAGERS]
    people = {p.hsa_id: p for p in db.session.execute(
        select(Person).where(Person.hsa_id.in_(hsa_ids))).unique().scalars()} if hsa_ids else {}
    labels = []
    for hsa_id in hsa_ids:
        person = people.get(hsa_id)
        name = access.person_view(person, cleared)["name"] if person else None
        labels.append((hsa_id, f"{name} ({hsa_id})" if name else hsa_id))
    return labels


def manager_candidates(text, cleared, limit=20) -> list[dict]:
    """People with a Chef login matching `text` (HSA-id prefix or part of the name), for the
    unit form's look-up: {"id": hsa_id, "text": label}. For a login without clearance a
    protected person is found only by their exact HSA-id and shown masked."""
    from app import access
    from app.access.scope import MANAGER_ROLE

    text = str(text or "").strip()[:100]
    if len(text) < 2:
        return []
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    matches = (Person.name.ilike(f"%{escaped}%", escape="\\")
               | Person.hsa_id.ilike(f"{escaped}%", escape="\\") | (Person.hsa_id == text.upper()))
    query = (
        select(Person)
        .join(AccountLink, AccountLink.person_id == Person.id)
        .join(user_roles, user_roles.c.user_id == AccountLink.user_id)
        .join(Role, Role.id == user_roles.c.role_id)
        # Whom the reader may find is the access policy's (a protected person: cleared, or
        # by their exact HSA-id only).
        .where(Role.name == MANAGER_ROLE, matches,
               access.findable_people(cleared, hsa_id=text.upper()))
        .order_by(Person.name, Person.hsa_id)
        .limit(limit)
    )
    found = []
    for person in db.session.execute(query).unique().scalars():
        shown = access.person_view(person, cleared)
        found.append({"id": person.hsa_id, "text": f"{shown['name']} ({person.hsa_id})"})
    return found


def _org_type(code, field="org_type_code") -> OrganisationType:
    code = str(code or "").strip()
    if not code:
        raise FieldError(field, _l("This field is required."))
    org_type = db.session.get(OrganisationType, code) if code in ORG_TYPES else None
    if org_type is None:
        raise FieldError(field, _l("No such item."))
    return org_type


# --- pickup points ---------------------------------------------------------------------------

@step
def save_pickup_point(data, pickup_point_id=None) -> PickupPoint:
    """Add a pickup point, or change the given fields. Fields: name, address, min_stock
    (the stock view warns below it), active."""
    point = _load(PickupPoint, pickup_point_id, "pickup_point")
    creating = point is None
    values = {}
    if creating or "name" in data:
        values["name"] = _text(data, "name", required=True, max_length=200)
    if "address" in data:
        values["address"] = _text(data, "address", max_length=400)
    if "min_stock" in data or creating:
        values["min_stock"] = _min_stock(data.get("min_stock", 5))
    if "active" in data or creating:
        values["active"] = bool(data.get("active", True))
    _check_unique(PickupPoint, pickup_point_id, values, ("name",))
    return _save(PickupPoint, "pickup_point", point, values)


def _min_stock(value) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = -1
    if isinstance(value, bool) or not 0 <= number <= MAX_MIN_STOCK:
        raise FieldError("min_stock", _l("Between %(min)s and %(max)s.")
                         % {"min": 0, "max": MAX_MIN_STOCK})
    return number


# --- organisation types ----------------------------------------------------------------------

@step
def set_attesters_required(code, n, name=None) -> OrganisationType:
    """How many authenticated attesters an issuance needs for the organisation type (1-5);
    `name`, when given, renames the type."""
    org_type = _org_type(code, field="code")
    try:
        count = int(n)
    except (TypeError, ValueError):
        count = 0
    if isinstance(n, bool) or not MIN_ATTESTERS <= count <= MAX_ATTESTERS:
        raise FieldError("attesters_required", _l("Between %(min)s and %(max)s.")
                         % {"min": MIN_ATTESTERS, "max": MAX_ATTESTERS})
    before = {"code": org_type.code, "name": org_type.name,
              "attesters_required": org_type.attesters_required}
    org_type.attesters_required = count
    if name is not None:
        org_type.name = _text({"name": name}, "name", required=True, max_length=100)
    db.session.flush()
    record("org_type.update", "organisation_type", None, before=before,
           after={"code": org_type.code, "name": org_type.name,
                  "attesters_required": org_type.attesters_required})
    return org_type


# --- shared ----------------------------------------------------------------------------------

def _load(model, pk, what):
    if pk is None:
        return None
    item = db.session.get(model, pk, populate_existing=True)
    if item is None:
        raise NotFound(what, pk)
    return item


def _text(data, field, required=False, max_length=None, upper=False) -> str | None:
    value = str(data.get(field) or "").strip()
    if upper:
        value = value.upper()
    if required and not value:
        raise FieldError(field, _l("This field is required."))
    if max_length and len(value) > max_length:
        raise FieldError(field, _l("At most %(max)s characters.") % {"max": max_length})
    return value or None


def _reference(model, pk, field) -> int | None:
    if pk in (None, ""):
        return None
    try:
        item = db.session.get(model, int(pk))
    except (TypeError, ValueError, OverflowError):
        item = None
    if item is None:
        raise FieldError(field, _l("No such item."))
    return item.id


def _check_unique(model, pk, values, fields) -> None:
    for field in fields:
        value = values.get(field)
        if value is None:
            continue
        taken = db.session.execute(
            select(model.id).where(getattr(model, field) == value, model.id != (pk or 0))
        ).first()
        if taken:
            raise FieldError(field, _l("Already registered."))


def _snapshot(item) -> dict:
    return {attr.key: getattr(item, attr.key) for attr in inspect(item).mapper.column_attrs}


def _save(model, entity, item, values):
    """Insert or update with one audit row; an edit that changes nothing writes nothing."""
    if item is None:
        item = model(**values)
        db.session.add(item)
        db.session.flush()
        record(f"{entity}.create", entity, item.id, after=_snapshot(item))
        return item
    before, after = {}, {}
    for key, value in values.items():
        if getattr(item, key) != value:
            before[key], after[key] = getattr(item, key), value
            setattr(item, key, value)
    if after:
        db.session.flush()
        record(f"{entity}.update", entity, item.id, before=before, after=after)
    return item
