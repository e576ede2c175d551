"""Managers of units: set on the unit by Admin or Servicecenter (workflow, API, screen with a
look-up as you type), audited; the one notion of manager (people.manager_id migrated to the
unit's managers); e-mails about a deviation go to its unit's managers."""

import re
import uuid
from datetime import date, timedelta

import pytest
from sqlalchemy import create_engine, select, text

from app import accounts
from app.extensions import db
from app.validation import FieldError
from app.workflow import registers, sweeps
from models import AuditEvent, Person, Unit
from tests.conftest import DEMO_PASSWORD, PG_URL, _pg_admin
from tests.workflow_support import apply, force_status, mails, person

CHEF_UNIT = "Hallands sjukhus Halmstad, Akutmottagningen"
OTHER_UNIT = "Capio Vårdcentral Laholm"
NEW_CHEF = "SE2321000131-E000000000881"


def _unit(name):
    return db.session.execute(select(Unit).where(Unit.name == name)).unique().scalar_one()


@pytest.fixture
def new_chef(app):
    """A person in the other unit with a Chef login that manages nothing yet."""
    boss = Person(hsa_id=NEW_CHEF, name="Petra Nychef", unit_id=_unit(OTHER_UNIT).id,
                  email="petra@example.se", protected_identity=False)
    db.session.add(boss)
    db.session.commit()
    accounts.create_user("petra", DEMO_PASSWORD, ["Chef"], hsa_id=NEW_CHEF)
    return boss


def _last(action):
    return db.session.execute(select(AuditEvent).where(AuditEvent.action == action)
                              .order_by(AuditEvent.id.desc())).scalars().first()


# --- the workflow ---------------------------------------------------------------------------

def test_managers_are_set_replaced_and_audited(as_user, new_chef):
    other = _unit(OTHER_UNIT)
    karin = person("Karin").hsa_id
    with as_user("servicecenter"):
        registers.save_unit({"manager_hsa_ids": [NEW_CHEF, karin]}, other.id)
    db.session.expire_all()
    assert _unit(OTHER_UNIT).manager_hsa_ids == sorted([NEW_CHEF, karin])
    event = _last("unit.managers")
    assert event.actor == "servicecenter" and event.entity_id == other.id
    assert event.before == {"manager_hsa_ids": []}
    assert event.after == {"manager_hsa_ids": sorted([NEW_CHEF, karin])}
    with as_user("admin"):
        registers.save_unit({"manager_hsa_ids": [NEW_CHEF]}, other.id)  # replaces the list
    db.session.expire_all()
    assert _unit(OTHER_UNIT).manager_hsa_ids == [NEW_CHEF]
    assert _last("unit.managers").after == {"manager_hsa_ids": [NEW_CHEF]}
    events = db.session.query(AuditEvent).count()
    with as_user("admin"):
        registers.save_unit({"manager_hsa_ids": [NEW_CHEF]}, other.id)  # no change, no row
        registers.save_unit({"name": "Capio Vårdcentral Laholm"}, other.id)  # managers kept
    assert db.session.query(AuditEvent).count() == events
    assert _unit(OTHER_UNIT).manager_hsa_ids == [NEW_CHEF]


@pytest.mark.parametrize("value, words", [
    (["SE2321000131-E000000099999"], "ingen person med HSA-id SE2321000131-E000000099999"),
    (["inte-ett-hsa-id"], "HSA"),
    ("SE2321000131-E000000000011", "lista"),
    (["SE2321000131-E000000000001"], "ingen inloggning med rollen Chef"),  # Anna: no Chef login
])
def test_a_wrong_manager_is_refused_naming_the_field(as_user, value, words):
    unit = _unit(OTHER_UNIT)
    with as_user("servicecenter"), pytest.raises(FieldError) as refused:
        registers.save_unit({"manager_hsa_ids": value}, unit.id)
    assert refused.value.field == "manager_hsa_ids"
    assert words in refused.value.message
    db.session.expire_all()
    assert _unit(OTHER_UNIT).manager_hsa_ids == []


def test_a_name_given_for_a_manager_is_explained_with_whom_it_matches(as_user, namesakes):
    unit = _unit(OTHER_UNIT)
    with as_user("servicecenter"):
        for name, words in [
                ("Karin Karlsson", "den enda personen med namnet ”Karin Karlsson” är Karin "
                                   "Karlsson (SE2321000131-E000000000011)"),
                ("Eva Ek", "ingen person med namnet ”Eva Ek” hittades"),  # protected
                ("tvillingsson", "hittade 2 personer med namnet ”tvillingsson”: Tora "
                                 "Tvillingsson (SE2321000131-E000000000771), Tyra Tvillingsson "
                                 "(SE2321000131-E000000000772).")]:
            with pytest.raises(FieldError) as refused:
                registers.save_unit({"manager_hsa_ids": [name]}, unit.id)
            assert refused.value.field == "manager_hsa_ids"
            assert refused.value.message.startswith("Ange HSA-id, t.ex. SE2321000131-B123")
            assert words in refused.value.message, refused.value.message


def test_a_unit_cannot_be_placed_below_its_own_sub_unit(as_user):
    root = _unit(CHEF_UNIT)
    with as_user("servicecenter"):
        child = registers.save_unit({"name": "Barnakuten", "org_type_code": "region",
                                     "parent_id": root.id})
        with pytest.raises(FieldError) as refused:
            registers.save_unit({"parent_id": child.id}, root.id)
    assert refused.value.field == "parent_id"


# --- the API --------------------------------------------------------------------------------

def test_api_reads_and_writes_manager_hsa_ids(client, api_headers, new_chef):
    karin = person("Karin").hsa_id
    for role in ("Servicecenter", "Admin"):
        headers = api_headers(role)
        listed = client.get("/api/v1/units/", headers=headers).get_json()["result"]
        by_name = {row["name"]: row for row in listed}
        assert by_name[CHEF_UNIT]["manager_hsa_ids"] == [karin]
    headers = api_headers("Servicecenter")
    created = client.post("/api/v1/units/", headers=headers, json={
        "name": "Barnakuten", "org_type_code": "region", "parent_id": _unit(CHEF_UNIT).id,
        "manager_hsa_ids": [NEW_CHEF]})
    assert created.status_code == 201, created.get_json()
    unit_id = created.get_json()["id"]
    assert created.get_json()["result"]["manager_hsa_ids"] == [NEW_CHEF]
    shown = client.get(f"/api/v1/units/{unit_id}", headers=headers).get_json()["result"]
    assert shown["manager_hsa_ids"] == [NEW_CHEF]
    changed = client.put(f"/api/v1/units/{unit_id}", headers=headers,
                         json={"manager_hsa_ids": [karin]})
    assert changed.status_code == 200 and changed.get_json()["result"]["manager_hsa_ids"] == [karin]
    kept = client.put(f"/api/v1/units/{unit_id}", headers=headers, json={"name": "Barnakuten 2"})
    assert kept.get_json()["result"]["manager_hsa_ids"] == [karin]
    for wrong in (["SE2321000131-E000000099999"], ["x"], "SE2321000131-E000000000011",
                  [person("Anna").hsa_id]):
        refused = client.put(f"/api/v1/units/{unit_id}", headers=headers,
                             json={"manager_hsa_ids": wrong})
        assert refused.status_code == 400, (wrong, refused.get_json())
        assert "manager_hsa_ids" in refused.get_json()["errors"]
    assert client.get(f"/api/v1/units/{unit_id}", headers=headers).get_json()[
        "result"]["manager_hsa_ids"] == [karin]
    assert client.put(f"/api/v1/units/{unit_id}", headers=api_headers("Chef"),
                      json={"manager_hsa_ids": []}).status_code == 403


def test_a_manager_set_through_the_api_sees_the_units_report(client, api_headers, new_chef,
                                                              as_user):
    from app.workflow import deviations

    with as_user("servicecenter"):
        filed = deviations.create("manual", "Kort kvar", person_hsa_id=person("Cecilia").hsa_id)
    empty = client.get("/api/v1/deviations/", headers=api_headers("petra")).get_json()
    assert empty["result"] == []
    client.put(f"/api/v1/units/{_unit(OTHER_UNIT).id}", headers=api_headers("Servicecenter"),
               json={"manager_hsa_ids": [NEW_CHEF]})
    seen = client.get("/api/v1/deviations/", headers=api_headers("petra")).get_json()
    assert [row["id"] for row in seen["result"]] == [filed.id]


# --- the screen -----------------------------------------------------------------------------

def test_the_unit_form_looks_managers_up_and_never_lists_every_person(login, new_chef):
    client = login("Servicecenter")
    unit = _unit(CHEF_UNIT)
    form = client.get(f"/registers/units/edit/{unit.id}").get_data(as_text=True)
    select_tag = re.search(r'<select multiple id="manager_hsa_ids".*?</select>', form, re.S)
    assert select_tag and "rk-person-lookup" in select_tag.group(0)
    options = re.findall(r"<option[^>]*>([^<]*)</option>", select_tag.group(0))
    assert options == [f"Karin Karlsson ({person('Karin').hsa_id})"]  # only the chosen one
    assert "Anna Åkesson" not in form
    url = re.search(r'data-lookup-url="([^"]+)"', select_tag.group(0)).group(1)
    found = client.get(url, query_string={"q": "Nych"}).get_json()["results"]
    assert found == [{"id": NEW_CHEF, "text": f"Petra Nychef ({NEW_CHEF})"}]
    assert client.get(url, query_string={"q": "Anna"}).get_json()["results"] == []  # no Chef
    assert client.get(url, query_string={"q": "%"}).get_json()["results"] == []
    answer = client.post(f"/registers/units/edit/{unit.id}", data={
        "name": unit.name, "org_type": unit.org_type_code,
        "manager_hsa_ids": [person("Karin").hsa_id, NEW_CHEF]}, follow_redirects=True)
    assert answer.status_code == 200
    db.session.expire_all()
    assert _unit(CHEF_UNIT).manager_hsa_ids == sorted([person("Karin").hsa_id, NEW_CHEF])
    assert _last("unit.managers").actor == "servicecenter"
    refused = client.post(f"/registers/units/edit/{unit.id}", data={
        "name": unit.name, "org_type": unit.org_type_code,
        "manager_hsa_ids": [person("Anna").hsa_id]})
    assert "ingen inloggning med rollen Chef" in refused.get_data(as_text=True)
    assert login("Chef").get(url, query_string={"q": "Nych"}).status_code in (302, 403)


@pytest.mark.both_databases
def test_a_protected_manager_is_masked_and_found_only_by_hsa_id(login, new_chef, dialect):
    new_chef.protected_identity = True
    db.session.commit()
    client = login("Servicecenter")  # not cleared
    unit = _unit(OTHER_UNIT)
    url = "/registers/units/managers/lookup"
    assert client.get(url, query_string={"q": "Petra"}).get_json()["results"] == []
    # The look-up asks the access policy: a prefix of the HSA-id does not find them either.
    assert client.get(url, query_string={"q": NEW_CHEF[:-2]}).get_json()["results"] == []
    found = client.get(url, query_string={"q": NEW_CHEF}).get_json()["results"]
    assert found == [{"id": NEW_CHEF, "text": f"Skyddad identitet ({NEW_CHEF})"}]
    registers.save_unit({"manager_hsa_ids": [NEW_CHEF]}, unit.id)
    form = client.get(f"/registers/units/edit/{unit.id}").get_data(as_text=True)
    assert "Petra" not in form and f"Skyddad identitet ({NEW_CHEF})" in form


# --- one notion of manager: e-mails --------------------------------------------------------

def test_the_not_returned_mail_goes_to_the_deviations_unit_managers(app, as_user, new_chef):
    """Anna's unit is managed by Karin; a sub-unit's manager is not told, the manager of the
    unit above is. Person.manager no longer exists."""
    assert not hasattr(Person, "manager_id")
    root = _unit(CHEF_UNIT)
    with as_user("servicecenter"):
        child = registers.save_unit({"name": "Akuten, team A", "org_type_code": "region",
                                     "parent_id": root.id})
        registers.save_unit({"manager_hsa_ids": [NEW_CHEF]}, child.id)
        registers.save_person({"unit_id": child.id}, person("Björn").id)
    issued = date(2026, 3, 2)
    anna = apply(as_user, recipient="Anna")
    bjorn = apply(as_user, recipient="Björn", attesters=("Helena",))
    for issuance in (anna, bjorn):
        force_status(issuance.id, "expired", valid_until=issued)
    sweeps.report_not_returned(issued + timedelta(days=30))
    db.session.commit()
    to_anna = sorted(m.to_addrs for m in mails("not_returned_manager", anna.id))
    to_bjorn = sorted(m.to_addrs for m in mails("not_returned_manager", bjorn.id))
    assert to_anna == [person("Karin").email]
    assert to_bjorn == sorted([person("Karin").email, "petra@example.se"])


# --- the migration --------------------------------------------------------------------------

@pytest.mark.both_databases
def test_the_migration_moves_person_managers_to_their_units(dialect, tmp_path):
    from flask_migrate import downgrade, upgrade

    from app import create_app
    from config import TestConfig

    if dialect == "sqlite":
        url, drop = f"sqlite:///{tmp_path / 'migrate.db'}", None
    else:
        name = f"rk_mig_{uuid.uuid4().hex[:10]}"
        admin = _pg_admin()
        admin.cursor().execute(f'CREATE DATABASE "{name}"')
        url = PG_URL.format(name=name)

        def drop():
            admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.close()
    try:
        migrating = create_app(TestConfig, SQLALCHEMY_DATABASE_URI=url,
                               INSTANCE_DIR=str(tmp_path), MAIL_DIR=str(tmp_path / "mail"),
                               UPLOAD_DIR=str(tmp_path / "uploads"))
        with migrating.app_context():
            upgrade(revision="0001")
            engine = create_engine(url)
            with engine.begin() as sql:
                sql.execute(text("INSERT INTO organisation_types (code, name, attesters_required)"
                                 " VALUES ('region', 'Region', 2)"))
                sql.execute(text("INSERT INTO units (id, name, org_type_code) VALUES "
                                 "(1, 'A', 'region'), (2, 'B', 'region')"))
                sql.execute(text(
                    "INSERT INTO people (id, hsa_id, name, unit_id, manager_id, "
                    "protected_identity) VALUES "
                    "(1, 'SE-M1', 'Chef Ett', 1, NULL, false), "
                    "(2, 'SE-P2', 'Anställd Två', 1, 1, false), "
                    "(3, 'SE-P3', 'Anställd Tre', 1, 1, false), "
                    "(4, 'SE-P4', 'Anställd Fyra', 2, 1, false), "
                    "(5, 'SE-P5', 'Utan Enhet', NULL, 1, false)"))
                sql.execute(text("INSERT INTO unit_managers (unit_id, person_id) VALUES (1, 1)"))
            db.session.remove()
            upgrade()
            with engine.connect() as sql:
                pairs = sorted(tuple(row) for row in sql.execute(
                    text("SELECT unit_id, person_id FROM unit_managers")))
                columns = [c["name"] for c in __import__("sqlalchemy").inspect(
                    sql).get_columns("people")]
            assert pairs == [(1, 1), (2, 1)]
            assert "manager_id" not in columns
            downgrade(revision="0001")
            with engine.connect() as sql:
                managers = dict(sql.execute(text("SELECT id, manager_id FROM people")).all())
            assert managers[2] == 1 and managers[4] == 1
            engine.dispose()
            db.session.remove()
            db.engine.dispose()
    finally:
        if drop:
            drop()
