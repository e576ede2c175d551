"""The registers kept by hand: people, units, pickup points and the attester count per
organisation type. Every save checks its fields (naming the wrong one), writes nothing when a
value is wrong, and writes one audit row per change."""

import pytest
from sqlalchemy import select

from app.errors import NotFound
from app.extensions import db
from app.validation import FieldError
from app.workflow import kobe, registers
from models import AuditEvent, KobeRecord, OrganisationType, Person, PickupPoint, Unit
from tests.workflow_support import count, person

NEW_HSA = "SE2321000131-E000000000077"
pytestmark = pytest.mark.usefixtures("app")


def _first_unit() -> Unit:
    return db.session.execute(select(Unit).order_by(Unit.id).limit(1)).scalar_one()


def _refused(field, step, *args, **kwargs) -> FieldError:
    """Run a step that must be refused for `field`; nothing may be written."""
    before = {model: count(model) for model in (Person, Unit, PickupPoint, AuditEvent)}
    with pytest.raises(FieldError) as refused:
        step(*args, **kwargs)
    assert refused.value.field == field
    db.session.expire_all()
    assert {model: count(model) for model in before} == before
    return refused.value


def _last_event() -> AuditEvent:
    return db.session.execute(select(AuditEvent).order_by(AuditEvent.id.desc())).scalars().first()


def test_a_person_is_saved_normalised_with_manager_and_audit_row(as_user):
    karin, unit = person("Karin"), _first_unit()
    with as_user("Servicecenter"):
        olle = registers.save_person({
            "hsa_id": NEW_HSA.lower(), "personal_number": "19850505-1238",
            "name": " Olle Ohlsson ", "email": " olle@example.se ", "unit_id": unit.id,
            "card_office_role": "lra"})
    db.session.expire_all()
    olle = db.session.get(Person, olle.id)
    assert (olle.hsa_id, olle.personal_number, olle.name, olle.email) == (
        NEW_HSA, "198505051238", "Olle Ohlsson", "olle@example.se")
    assert (olle.unit_id, olle.card_office_role) == (unit.id, "LRA")
    assert olle.unit.managers == [karin]  # the one notion of manager: the unit's
    assert olle.protected_identity is False and olle.created_at is not None
    event = _last_event()
    assert (event.action, event.entity_id, event.actor) == ("person.create", olle.id,
                                                            "servicecenter")
    assert event.after["personal_number"] == "198505051238"


def test_a_malformed_personal_number_names_the_field_and_writes_nothing():
    refused = _refused("personal_number", registers.save_person, {
        "hsa_id": NEW_HSA, "personal_number": "19850101-1230", "name": "Olle Ohlsson"})
    assert "personal identity number" in refused.message or "personnummer" in refused.message


@pytest.mark.parametrize("data, field", [
    ({"hsa_id": "E77", "name": "Olle"}, "hsa_id"),
    ({"hsa_id": NEW_HSA, "name": "  "}, "name"),
    ({"hsa_id": NEW_HSA, "name": "Olle", "email": "olle.example.se"}, "email"),
    ({"hsa_id": NEW_HSA, "name": "Olle", "unit_id": 999999}, "unit_id"),
    ({"hsa_id": NEW_HSA, "name": "Olle", "manager_hsa_id": "SE2321000131-E000000000011"},
     "manager_hsa_id"),
])
def test_a_wrong_person_field_is_named_and_nothing_is_written(data, field):
    _refused(field, registers.save_person, data)


def test_unique_values_of_a_person_are_refused():
    anna = person("Anna")
    _refused("hsa_id", registers.save_person, {"hsa_id": anna.hsa_id, "name": "Anna Igen"})
    _refused("personal_number", registers.save_person, {
        "hsa_id": NEW_HSA, "name": "Anna Igen", "personal_number": anna.personal_number})


def test_an_edit_changes_only_the_given_fields_with_before_and_after():
    anna = person("Anna")
    name, hsa = anna.name, anna.hsa_id
    registers.save_person({"email": "anna.ny@example.se"}, anna.id)
    db.session.expire_all()
    anna = db.session.get(Person, anna.id)
    assert (anna.email, anna.name, anna.hsa_id) == ("anna.ny@example.se", name, hsa)
    event = _last_event()
    assert event.action == "person.update" and event.after == {"email": "anna.ny@example.se"}
    assert set(event.before) == {"email"}
    events = count(AuditEvent)
    registers.save_person({"email": "anna.ny@example.se"}, anna.id)  # no change, no row
    assert count(AuditEvent) == events
    _refused("manager_hsa_id", registers.save_person, {"manager_hsa_id": hsa}, anna.id)
    with pytest.raises(NotFound):
        registers.save_person({"name": "Ingen"}, 999999)


def test_units_are_saved_with_their_organisation_type_and_parent():
    parent = _first_unit()
    unit = registers.save_unit({"name": "Vårdcentral Norr", "hsa_id": "se2321000131-f000000000001",
                                "org_type_code": "municipality", "parent_id": parent.id})
    assert (unit.hsa_id, unit.org_type_code, unit.parent_id) == (
        "SE2321000131-F000000000001", "municipality", parent.id)
    assert _last_event().action == "unit.create"
    _refused("org_type_code", registers.save_unit, {"name": "X", "org_type_code": "castle"})
    _refused("parent_id", registers.save_unit, {"parent_id": unit.id}, unit.id)
    _refused("hsa_id", registers.save_unit, {"name": "Y", "hsa_id": unit.hsa_id,
                                             "org_type_code": "region"})


def test_pickup_points_are_saved_and_min_stock_checked():
    point = registers.save_pickup_point({"name": "Reception Kungsbacka", "min_stock": "3"})
    assert (point.min_stock, point.active) == (3, True)
    assert _last_event().action == "pickup_point.create"
    _refused("min_stock", registers.save_pickup_point, {"name": "Annan", "min_stock": -1})
    _refused("name", registers.save_pickup_point, {"name": "Reception Kungsbacka"})
    registers.save_pickup_point({"active": False}, point.id)
    assert db.session.get(PickupPoint, point.id).active is False
    assert _last_event().action == "pickup_point.update"


@pytest.mark.parametrize("wrong", [0, 6, "many", None])
def test_the_attester_count_is_between_1_and_5(wrong):
    _refused("attesters_required", registers.set_attesters_required, "municipality", wrong)
    db.session.expire_all()
    assert db.session.get(OrganisationType, "municipality").attesters_required == 2


def test_the_attester_count_is_changed_with_an_audit_row(as_user):
    with as_user("Admin"):
        registers.set_attesters_required("municipality", "1")
    db.session.expire_all()
    assert db.session.get(OrganisationType, "municipality").attesters_required == 1
    event = _last_event()
    assert (event.action, event.actor) == ("org_type.update", "admin")
    assert event.before["attesters_required"] == 2 and event.after["attesters_required"] == 1
    _refused("code", registers.set_attesters_required, "castle", 2)


def test_kobe_rows_are_validated_without_saving():
    rows = [{"hsa_id": person("Anna").hsa_id, "ordinary_card": "ordered",
             "reserve_card_order": "nej"},
            {"hsa_id": "SE2321000131-E000000099999", "ordinary_card": "sometimes",
             "reserve_card_order": "kanske"}]
    before = {r.person_id: (r.ordinary_card, r.reserve_card_order)
              for r in db.session.execute(select(KobeRecord)).scalars()}
    errors = kobe.validate_rows(rows)
    assert {(e["row"], e["field"]) for e in errors} == {
        (2, "hsa_id"), (2, "ordinary_card"), (2, "reserve_card_order")}
    assert all(e["message"] for e in errors)
    assert kobe.validate_rows(rows[:1]) == []
    db.session.expire_all()
    assert {r.person_id: (r.ordinary_card, r.reserve_card_order)
            for r in db.session.execute(select(KobeRecord)).scalars()} == before
