"""Deviation screens: row-level visibility for managers, filters, notes, closing, manual
deviations, protected identities masked, and the streamed CSV/XLSX report."""

import csv
import io

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from app.extensions import db
from models import Deviation, DeviationNote, Unit

OWN_UNIT = "Hallands sjukhus Halmstad, Akutmottagningen"  # the demo Chef manages this unit
OTHER_UNIT = "Capio Vårdcentral Laholm"


@pytest.fixture
def deviations(as_user, demo_person):
    """Three deviations: Anna and Eva (protected identity) in the Chef's unit, Cecilia not."""
    from app.workflow import deviations as workflow

    made = {}
    with as_user("Servicecenter"):
        for key, kind, prefix, text in (
            ("own", "manual", "Anna", "Kortet glömt i omklädningsrummet"),
            ("other", "card_lost", "Cecilia", "Kortet förlorat på resa"),
            ("protected", "manual", "Eva", "Uppföljning behövs"),
        ):
            made[key] = workflow.create(kind, text, person_hsa_id=demo_person(prefix).hsa_id).id
    return made


def test_chef_lists_only_deviations_of_own_units(login, deviations):
    page = login("Chef").get("/deviations/list/").get_data(as_text=True)
    assert "Anna Åkesson" in page
    assert "Cecilia" not in page
    assert OTHER_UNIT not in page
    assert "Avvikelser" in page  # the list title in Swedish


def test_servicecenter_lists_every_unit(login, deviations):
    page = login("Servicecenter").get("/deviations/list/").get_data(as_text=True)
    assert "Anna Åkesson" in page and "Cecilia Ängström" in page


def test_another_units_deviation_is_not_found_for_chef(login, deviations):
    chef = login("Chef")
    assert chef.get(f"/deviations/show/{deviations['own']}").status_code == 200
    assert chef.get(f"/deviations/show/{deviations['other']}").status_code == 404
    # The workflow refuses the step (the screen flashes why); nothing is changed.
    for answer in (
        chef.post(f"/deviations/note/{deviations['other']}", data={"text": "Hemligt"},
                  follow_redirects=True),
        chef.post(f"/deviations/close/{deviations['other']}", follow_redirects=True),
    ):
        assert answer.status_code == 200
        assert "inte är chef för" in answer.get_data(as_text=True)
    assert db.session.execute(select(DeviationNote)).first() is None
    assert db.session.get(Deviation, deviations["other"]).status == "open"


def test_protected_identity_is_masked_for_a_chef_without_clearance(login, deviations):
    chef = login("Chef")
    page = chef.get("/deviations/list/").get_data(as_text=True)
    assert "Skyddad identitet" in page
    assert "Eva Ek" not in page and "19850630" not in page
    show = chef.get(f"/deviations/show/{deviations['protected']}").get_data(as_text=True)
    assert "Skyddad identitet" in show and "Eva Ek" not in show


def test_type_and_status_filters(login, deviations):
    client = login("Servicecenter")
    by_type = client.get("/deviations/list/?_flt_3_type=card_lost").get_data(as_text=True)
    assert "Cecilia Ängström" in by_type and "Anna Åkesson" not in by_type
    assert "Reservkort förlorat" in by_type  # the type shown by its Swedish name
    client.post(f"/deviations/close/{deviations['own']}")
    closed = client.get("/deviations/list/?_flt_3_status=closed").get_data(as_text=True)
    assert "Anna Åkesson" in closed and "Cecilia" not in closed


def test_chef_adds_a_note_and_closes(login, deviations):
    chef = login("Chef")
    answer = chef.post(f"/deviations/note/{deviations['own']}",
                       data={"text": "Pratat med Anna, kortet lämnas i morgon."},
                       follow_redirects=True)
    page = answer.get_data(as_text=True)
    assert "Anteckningen har sparats." in page
    assert "Pratat med Anna, kortet lämnas i morgon." in page
    note = db.session.execute(select(DeviationNote)).scalar_one()
    assert note.deviation_id == deviations["own"] and note.author_name == "chef"
    answer = chef.post(f"/deviations/close/{deviations['own']}", follow_redirects=True)
    assert "Avvikelsen har stängts." in answer.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Deviation, deviations["own"]).status == "closed"


def test_empty_note_is_refused_naming_the_field(login, deviations):
    answer = login("Chef").post(f"/deviations/note/{deviations['own']}", data={"text": "  "},
                                follow_redirects=True)
    assert answer.status_code == 200
    assert "Anteckning: " in answer.get_data(as_text=True)
    assert db.session.execute(select(DeviationNote)).first() is None


def test_servicecenter_registers_a_manual_deviation(login, demo_person):
    client = login("Servicecenter")
    assert "Registrera avvikelsen" in client.get("/deviations/create").get_data(as_text=True)
    refused = client.post("/deviations/create", data={
        "type": "manual", "person_hsa_id": demo_person("Björn").hsa_id, "description": ""})
    assert "Beskrivning: " in refused.get_data(as_text=True)
    assert db.session.execute(select(Deviation)).first() is None
    answer = client.post("/deviations/create", data={
        "type": "manual", "person_hsa_id": demo_person("Björn").hsa_id,
        "description": "Kuvertet var öppnat vid leverans"})
    assert answer.status_code == 302
    deviation = db.session.execute(select(Deviation)).unique().scalar_one()
    assert deviation.person.name == "Björn Östlund" and deviation.unit.name == OWN_UNIT
    assert answer.headers["Location"].endswith(f"/deviations/show/{deviation.id}")


def test_other_roles_cannot_reach_deviations(login):
    for role in ("Korthandläggare", "Televäxeln", "Intygsgivare"):
        client = login(role)
        assert client.get("/deviations/list/").status_code == 403, role
        assert client.get("/deviations/report/export?format=csv").status_code == 403, role


def _csv_rows(response):
    text = response.get_data().decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text), delimiter=";"))


def test_chef_csv_export_is_streamed_and_holds_only_own_units(login, deviations):
    answer = login("Chef").get("/deviations/report/export?format=csv")
    assert answer.status_code == 200
    assert answer.is_streamed
    assert answer.mimetype == "text/csv"
    assert 'filename="avvikelser-' in answer.headers["Content-Disposition"]
    assert answer.headers["Content-Disposition"].endswith('.csv"')
    header, *rows = _csv_rows(answer)
    assert header[:5] == ["Avvikelse", "Skapad", "Typ", "Status", "Enhet"]
    assert len(rows) == 2
    for row in rows:
        assert row[header.index("Enhet")] == OWN_UNIT
    names = {row[header.index("Namn")] for row in rows}
    assert names == {"Anna Åkesson", "Skyddad identitet"}
    assert {row[header.index("Typ")] for row in rows} == {"Manuell"}


def test_servicecenter_csv_export_filters(login, deviations):
    client = login("Servicecenter")
    header, *rows = _csv_rows(client.get("/deviations/report/export?format=csv"))
    assert len(rows) == 3
    header, *rows = _csv_rows(client.get("/deviations/report/export?format=csv&type=card_lost"))
    assert [row[header.index("Namn")] for row in rows] == ["Cecilia Ängström"]
    other = db.session.execute(select(Unit.id).where(Unit.name == OTHER_UNIT)).scalar_one()
    header, *rows = _csv_rows(client.get(f"/deviations/report/export?format=csv&unit_id={other}"))
    assert [row[header.index("Enhet")] for row in rows] == [OTHER_UNIT]
    header, *rows = _csv_rows(client.get("/deviations/report/export?format=csv&to=2000-01-01"))
    assert rows == []


def test_chef_cannot_export_another_unit(login, deviations):
    other = db.session.execute(select(Unit.id).where(Unit.name == OTHER_UNIT)).scalar_one()
    header, *rows = _csv_rows(
        login("Chef").get(f"/deviations/report/export?format=csv&unit_id={other}"))
    assert rows == []


def test_chef_xlsx_export_holds_only_own_units(login, deviations):
    answer = login("Chef").get("/deviations/report/export?format=xlsx&status=open")
    assert answer.status_code == 200 and answer.is_streamed
    assert answer.headers["Content-Disposition"].endswith('.xlsx"')
    sheet = load_workbook(io.BytesIO(answer.get_data()), read_only=True).active
    header, *rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert header[4] == "Enhet"
    assert len(rows) == 2
    for row in rows:
        assert row[4] == OWN_UNIT
        assert row[3] == "Öppen"
    assert "Cecilia Ängström" not in {row[5] for row in rows}


def test_bad_report_filter_is_a_message_not_an_error(login, deviations):
    answer = login("Chef").get("/deviations/report/export?format=csv&from=igår",
                               follow_redirects=True)
    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    assert "ÅÅÅÅ-MM-DD" in page and "from" in page


def test_report_form_offers_only_own_units_to_chef(login, deviations):
    page = login("Chef").get("/deviations/report/").get_data(as_text=True)
    assert OWN_UNIT in page and OTHER_UNIT not in page
    assert "Ladda ner CSV" in page


def test_a_name_typed_for_the_persons_hsa_id_is_found_or_explained(login, demo_person,
                                                                   namesakes):
    client = login("Servicecenter")
    bjorn = demo_person("Björn")
    found = client.post("/deviations/create", data={
        "type": "manual", "person_hsa_id": "Björn Östlund", "description": "Kortet saknas"})
    page = found.get_data(as_text=True)
    assert f"Hittade på namnet ”Björn Östlund”: Björn Östlund ({bjorn.hsa_id})" in page
    assert f'value="{bjorn.hsa_id}"' in page
    several = client.post("/deviations/create", data={
        "type": "manual", "person_hsa_id": "Tvillingsson", "description": "x"}).text
    assert ("Personens HSA-id: Ange HSA-id, t.ex. SE2321000131-B123; hittade 2 personer med "
            "namnet ”Tvillingsson”: Tora Tvillingsson") in several
    assert db.session.execute(select(Deviation)).first() is None


@pytest.mark.both_databases
def test_the_unit_filter_compares_the_unit_key_without_reading_the_unit(login, deviations):
    from sqlalchemy import event

    own = db.session.execute(select(Unit.id).where(Unit.name == OWN_UNIT)).scalar_one()
    screen = login("Servicecenter")
    statements = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        page = screen.get(f"/deviations/list/?_flt_0_unit={own}").get_data(as_text=True)
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    assert "Anna Åkesson" in page and "Cecilia" not in page
    # FAB's relation filter read the unit by its key twice (for the count and for the page).
    assert not [s for s in statements if "WHERE units.id =" in s], statements
    for key in ("999999", "abc", "1.5"):
        answer = screen.get(f"/deviations/list/?_flt_0_unit={key}")
        assert answer.status_code == 200, key
        text = answer.get_data(as_text=True)
        assert "Anna Åkesson" not in text and "Cecilia" not in text, key
