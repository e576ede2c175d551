"""The registers kept by hand: people, units, pickup points and the attester count per
organisation type.

Each save takes a dict of the values given (an edit changes only those), checks them, and
writes the change with its audit row in one transaction. A wrong value is a FieldError naming
the field; an unknown id is NotFound.
"""

import re

from flask_babel import lazy_gettext as _l
from sqlalchemy import inspect, select

from app import access, clock, validation
from app.errors import NotFound
from app.extensions import db
from app.validation import FieldError
from app.workflow._common import record
from app.workflow._tx import step
from models import ORG_TYPES, OrganisationType, Person, PickupPoint, Unit

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_ATTESTERS, MAX_ATTESTERS = 1, 5
MAX_MIN_STOCK = 100_000


# --- people ----------------------------------------------------------------------------------

@step
def save_person(data, person_id=None) -> Person:
    """Add a person, or change the given fields of person `person_id`.

    Fields: hsa_id, personal_number (empty for none), name, email, unit_id, manager_hsa_id
    (empty for none), protected_identity, card_office_role (RA, ORA, KRA or LRA).
    """
    person = _load(Person, person_id, "person")
    # Only a login with clearance may change a protected person or lift the protection.
    access.check_person_edit(person)
    values = _person_values(data, creating=person is None)
    _check_unique(Person, person_id, values, ("hsa_id", "personal_number"))
    if person is not None and values.get("manager_id") == person.id:
        raise FieldError("manager_hsa_id", _l("A person cannot be their own manager."))
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
    if "manager_hsa_id" in data:
        values["manager_id"] = _manager_id(data.get("manager_hsa_id"))
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


def _manager_id(value) -> int | None:
    if not str(value or "").strip():
        return None
    hsa_id = validation.hsa_id(value, field="manager_hsa_id")
    manager_id = db.session.execute(select(Person.id).where(Person.hsa_id == hsa_id)).scalar()
    if manager_id is None:
        raise FieldError("manager_hsa_id",
                         _l("No person with HSA-id %(hsa_id)s.") % {"hsa_id": hsa_id})
    return manager_id


# --- units -----------------------------------------------------------------------------------

@step
def save_unit(data, unit_id=None) -> Unit:
    """Add a unit, or change the given fields. Fields: name, hsa_id (optional),
    org_type_code, parent_id (the unit it is part of; optional)."""
    unit = _load(Unit, unit_id, "unit")
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
    _check_unique(Unit, unit_id, values, ("hsa_id",))
    return _save(Unit, "unit", unit, values)


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
