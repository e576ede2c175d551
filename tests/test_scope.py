"""Row scope of a manager (app.access.scope): a Chef sees and handles the deviations of the units
they manage and every unit below them, and nothing else, in the workflow, the screens, the API
and the report; a Chef of another unit sees nothing and cannot act."""

import csv
import io

import pytest
from sqlalchemy import insert, select

from app import accounts
from app.access import scope
from app.errors import ScopeRefusal
from app.extensions import db
from app.workflow import deviations
from models import Deviation, DeviationNote, Person, Unit, unit_managers
from tests.conftest import DEMO_PASSWORD
from tests.workflow_support import apply, person

CHEF_UNIT = "Hallands sjukhus Halmstad, Akutmottagningen"
OTHER_UNIT = "Capio Vårdcentral Laholm"
TREE_SIZE = 300  # units below the Chef's unit, five levels deep


def _unit(name):
    return db.session.execute(select(Unit).where(Unit.name == name)).unique().scalar_one()


@pytest.fixture
def other_chef(app):
    """A login with role Chef, manager of the other unit only."""
    other = _unit(OTHER_UNIT)
    boss = Person(hsa_id="SE2321000131-E000000000777", name="Olle Annanchef",
                  unit_id=other.id, email="olle@example.se", protected_identity=False)
    db.session.add(boss)
    db.session.flush()
    db.session.execute(unit_managers.insert().values(unit_id=other.id, person_id=boss.id))
    db.session.commit()
    accounts.create_user("chef2", DEMO_PASSWORD, ["Chef"], hsa_id=boss.hsa_id)
    return "chef2"


@pytest.fixture
def tree(app):
    """TREE_SIZE units below the Chef's unit (each level inserted in one statement), a person in
    the deepest one, and a deviation for Anna, the deep person and Cecilia (other unit)."""
    root = _unit(CHEF_UNIT)
    level = [root.id]
    org = root.org_type_code
    made = 0
    for depth in range(5):
        rows = [{"name": f"Underenhet {depth}-{i}", "org_type_code": org,
                 "parent_id": level[i % len(level)]} for i in range(TREE_SIZE // 5)]
        db.session.execute(insert(Unit), rows)
        made += len(rows)
        level = list(db.session.execute(
            select(Unit.id).where(Unit.name.like(f"Underenhet {depth}-%"))).scalars())
    deep = Person(hsa_id="SE2321000131-E000000000778", name="Dora Djupenhet",
                  unit_id=level[-1], email="dora@example.se", protected_identity=False)
    db.session.add(deep)
    db.session.commit()
    return {"units": made, "deep_unit": level[-1]}


@pytest.fixture
def filed(as_user, tree):
    with as_user("servicecenter"):
        return {
            "own": deviations.create("manual", "Egen enhet",
                                     person_hsa_id=person("Anna").hsa_id).id,
            "deep": deviations.create("manual", "Underenhet",
                                      person_hsa_id=person("Dora").hsa_id).id,
            "other": deviations.create("manual", "Annan enhet",
                                       person_hsa_id=person("Cecilia").hsa_id).id,
        }


def _visible_ids(as_user, who):
    with as_user(who) as user:
        return {d.id for d in db.session.execute(
            deviations.visible_deviations(user)).unique().scalars()}


@pytest.mark.both_databases
def test_a_managers_scope_is_the_managed_units_and_every_unit_below(app, as_user, filed, tree,
                                                                     other_chef, dialect):
    with as_user("chef") as chef:
        reached = set(db.session.execute(scope.unit_ids(chef)).scalars())
    assert len(reached) == tree["units"] + 1 and tree["deep_unit"] in reached
    assert _visible_ids(as_user, "chef") == {filed["own"], filed["deep"]}
    assert _visible_ids(as_user, other_chef) == {filed["other"]}
    assert _visible_ids(as_user, "servicecenter") == set(filed.values())
    assert _visible_ids(as_user, "televaxeln") == set()
    with as_user("chef") as chef:
        people = set(db.session.execute(
            scope.people_in_scope(select(Person.name), chef)).scalars())
    assert {"Anna Åkesson", "Dora Djupenhet"} <= people and "Cecilia Ängström" not in people


@pytest.mark.both_databases
def test_a_manager_handles_a_sub_units_deviation(as_user, filed, dialect):
    with as_user("chef"):
        deviations.add_note(filed["deep"], "Pratat med Dora")
        deviations.close(filed["deep"])
        made = deviations.create("manual", "Ny", person_hsa_id=person("Dora").hsa_id)
    assert db.session.get(Deviation, filed["deep"]).status == "closed"
    assert made.unit_id is not None


def test_a_chef_of_another_unit_cannot_act_in_the_workflow(as_user, filed, other_chef, caplog):
    issuance = apply(as_user)  # Anna, in the demo chef's unit
    with as_user(other_chef):
        for attempt in (
            lambda: deviations.create("manual", "x", person_hsa_id=person("Anna").hsa_id),
            lambda: deviations.create("card_lost", "x", issuance_id=issuance.id),
            lambda: deviations.add_note(filed["own"], "x"),
            lambda: deviations.close(filed["own"]),
        ):
            with pytest.raises(ScopeRefusal) as refused:
                attempt()
            assert refused.value.rule == "outside_managed_units"
    assert caplog.text.count("refused rule=outside_managed_units") == 4
    assert "step=deviation.close" in caplog.text
    assert db.session.execute(select(DeviationNote)).first() is None
    assert db.session.get(Deviation, filed["own"]).status == "open"
    assert db.session.execute(select(Deviation).where(Deviation.issuance_id == issuance.id)
                              ).first() is None


@pytest.mark.both_databases
def test_a_chef_of_another_unit_sees_nothing_in_screens_and_api(login, client, api_headers,
                                                                 filed, other_chef, dialect):
    screen = login(other_chef)
    page = screen.get("/deviations/list/").get_data(as_text=True)
    assert "Anna Åkesson" not in page and "Dora" not in page and "Cecilia Ängström" in page
    assert screen.get(f"/deviations/show/{filed['own']}").status_code == 404
    text = screen.get("/deviations/report/export?format=csv").get_data().decode("utf-8-sig")
    names = {row[5] for row in list(csv.reader(io.StringIO(text), delimiter=";"))[1:]}
    assert names == {"Cecilia Ängström"}
    for url, data in ((f"/deviations/note/{filed['own']}", {"text": "x"}),
                      (f"/deviations/close/{filed['own']}", {})):
        answer = screen.post(url, data=data, follow_redirects=True)
        assert "inte är chef för" in answer.get_data(as_text=True)
    refused = screen.post("/deviations/create", data={
        "type": "manual", "person_hsa_id": person("Anna").hsa_id, "description": "x"},
        follow_redirects=True)
    assert "inte är chef för" in refused.get_data(as_text=True)

    headers = api_headers(other_chef)
    listed = client.get("/api/v1/deviations/", headers=headers).get_json()
    assert {row["id"] for row in listed["result"]} == {filed["other"]}
    assert client.get(f"/api/v1/deviations/{filed['own']}", headers=headers).status_code == 404
    note = client.post(f"/api/v1/deviations/{filed['own']}/notes", json={"text": "x"},
                       headers=headers)
    assert note.status_code == 403 and note.get_json()["rule"] == "outside_managed_units"
    report = client.get("/api/v1/reports/deviations", headers=headers)
    rows = list(csv.DictReader(io.StringIO(report.get_data().decode("utf-8-sig")),
                               delimiter=";"))
    assert [int(row["id"]) for row in rows] == [filed["other"]]
    assert db.session.execute(select(DeviationNote)).first() is None
    assert db.session.get(Deviation, filed["own"]).status == "open"


def test_a_chef_who_manages_no_unit_sees_nothing(app, as_user, filed):
    nobody = Person(hsa_id="SE2321000131-E000000000779", name="Nina Ingenenhet",
                    unit_id=_unit(CHEF_UNIT).id, protected_identity=False)
    db.session.add(nobody)
    db.session.commit()
    accounts.create_user("chef3", DEMO_PASSWORD, ["Chef"], hsa_id=nobody.hsa_id)
    assert _visible_ids(as_user, "chef3") == set()
    with as_user("chef3"):
        with pytest.raises(ScopeRefusal):
            deviations.close(filed["own"])
