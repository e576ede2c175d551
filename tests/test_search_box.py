"""One search box per list: people and the rows about them (issuances, deviations, the Kobe
register) are found by name, HSA-id, personal identity number (any usual format) or card
serial, in the one search control of the list (the box and the Swedish choice filters in one
form). The access side (a protected person is never found without clearance) is proven in
test_access_filters.py."""

import re

import pytest
from flask_appbuilder import ModelView
from sqlalchemy import inspect, select

from app import labels, search
from app.extensions import db
from models import Deviation, Issuance, KobeRecord, Person
from tests.workflow_support import apply
from views.listing import SearchBoxMixin

GUSTAV = {"hsa_id": "SE2321000131-E000000000007", "name": "Gustav Gran",
          "personal_number": "196012120231"}
GUSTAV_NUMBERS = ("19601212-0231", "196012120231", "601212-0231", "6012120231", "601212 0231")
ANNA_HSA_ID = "SE2321000131-E000000000001"


def _person_link(pk) -> str:
    return f'/registers/people/show/{pk}"'


def _person_id(hsa_id) -> int:
    return db.session.execute(select(Person.id).where(Person.hsa_id == hsa_id)).scalar_one()


def test_the_text_is_read_as_what_it_can_be():
    for number in GUSTAV_NUMBERS:
        assert search.read(number).personal_number == GUSTAV["personal_number"], number
    assert search.read(" se2321000131-e000000000007 ").hsa_id == GUSTAV["hsa_id"]
    terms = search.read("1234 5678 90")
    assert terms.serial == "1234567890" and terms.personal_number is None
    assert search.read("Gustav  Gr").name_words == ("Gustav", "Gr")
    assert not search.read("Ek").searchable and search.read("Ek").name_too_short
    assert not search.read("12-ab").searchable and search.read("12-ab").name_too_short
    assert not search.read("12-34").searchable


@pytest.mark.both_databases
def test_the_people_list_finds_a_person_by_each_field(login, dialect):
    client = login("Servicecenter")
    link = _person_link(_person_id(GUSTAV["hsa_id"]))
    typed = ["Gustav Gran", "gran gustav", "gust", GUSTAV["hsa_id"].lower(), *GUSTAV_NUMBERS]
    for text in typed:
        page = client.get("/registers/people/list/", query_string={"q": text}).text
        assert link in page, text
    # Each field narrows the list: a number finds the one person, not everyone.
    page = client.get("/registers/people/list/", query_string={"q": GUSTAV_NUMBERS[0]}).text
    assert len(re.findall(r'/registers/people/show/\d+"', page)) == 1
    assert link not in client.get("/registers/people/list/",
                                  query_string={"q": "Zz-nobody"}).text


@pytest.mark.both_databases
def test_a_name_is_found_whatever_the_case_of_its_swedish_letters(login, dialect):
    """Å, Ä and Ö match å, ä and ö as A matches a, on SQLite too (whose own lower() and LIKE
    fold only ASCII)."""
    client = login("Servicecenter")
    link = _person_link(_person_id(ANNA_HSA_ID))
    for text in ("åkesson", "ÅKESSON", "anna åKESSON"):
        page = client.get("/registers/people/list/", query_string={"q": text}).text
        assert link in page, text


@pytest.mark.both_databases
def test_issuances_deviations_and_kobe_rows_are_found_by_their_person_or_card(
        login, as_user, dialect):
    from app.workflow import deviations

    issuance = apply(as_user, recipient="Anna")
    with as_user("servicecenter"):
        deviation = deviations.create("manual", "Följs upp", issuance_id=issuance.id)
    db.session.commit()
    serial = issuance.card.serial
    client = login("Servicecenter")
    lists = {"/issuances/list/": f"/issuances/show/{issuance.id}\"",
             "/deviations/list/": f"/deviations/show/{deviation.id}\""}
    for path, link in lists.items():
        for text in (serial, "Anna Åkesson", "anna", ANNA_HSA_ID, "800101-1231"):
            assert link in client.get(path, query_string={"q": text}).text, (path, text)
        assert link not in client.get(path, query_string={"q": "Zz-nobody"}).text
    kobe = db.session.execute(select(KobeRecord.id).where(
        KobeRecord.person_id == _person_id(ANNA_HSA_ID))).scalar_one()
    page = client.get("/registers/kobe/list/", query_string={"q": "Anna"}).text
    assert f"/registers/kobe/show/{kobe}\"" in page


def _search_views(app):
    return [view for view in app.appbuilder.baseviews if isinstance(view, SearchBoxMixin)]


def test_every_list_of_people_or_their_rows_has_the_box(app):
    models = {view.datamodel.obj for view in _search_views(app)}
    assert models == set(search.SEARCHABLE) == {Person, Issuance, Deviation, KobeRecord}
    for view in app.appbuilder.baseviews:
        if isinstance(view, ModelView) and view.datamodel.obj in search.SEARCHABLE:
            assert isinstance(view, SearchBoxMixin), type(view).__name__


def test_each_list_has_one_search_control(login):
    client = login("Servicecenter")
    for path in ("/issuances/list/", "/registers/people/list/", "/deviations/list/",
                 "/registers/kobe/list/"):
        page = client.get(path, query_string={"q": "Gustav"}).text
        assert page.count('role="search"') == 1, path
        assert len(re.findall(r'<form[^>]*method="get"', page)) == 1, path
        form = page[page.index('id="filter_form"'):page.index("</form>", page.index(
            'id="filter_form"'))]
        assert 'name="q"' in form and 'value="Gustav"' in form, path
        assert "Namn, HSA-id, personnummer eller kortnummer" in page, path


def test_a_text_that_can_find_nothing_says_what_to_type(login):
    page = login("Servicecenter").get("/registers/people/list/", query_string={"q": "Ek"}).text
    assert "Skriv minst 3 bokstäver av ett namn" in page
    assert 'class="help-block text-warning rk-search-hint"' in page


# --- filters on coded columns offer choices in words ----------------------------------------

def _coded(model, column) -> bool:
    """A column that holds codes: a check constraint lists its words, or the label table
    names its kind."""
    table = model.__table__
    if column not in table.c:
        return False
    for constraint in table.constraints:
        text = str(getattr(constraint, "sqltext", ""))
        if text.startswith(f"{column} IN ("):
            return True
    return column in labels.KINDS and not column.endswith("_id")


def test_filters_on_coded_columns_offer_choices_in_swedish(app, login):
    client = login("Admin")
    checked = []
    for view in app.appbuilder.baseviews:
        if not isinstance(view, ModelView):
            continue
        model = view.datamodel.obj
        relations = inspect(model).relationships.keys()
        for column in view.search_columns:
            if column in relations or not _coded(model, column):
                continue
            field = view.search_form_extra_fields.get(column) if (
                view.search_form_extra_fields) else None
            assert field is not None and "choices" in field.kwargs, (type(view).__name__,
                                                                     column)
            checked.append((type(view).__name__, column))
    assert ("IssuanceView", "reason") in checked and ("UnitView", "org_type_code") in checked
    assert ("OutboxView", "template") in checked
    page = client.get("/registers/units/list/").text
    assert "Privat vårdgivare" in page  # the organisation types offered in words


# --- served by indexes at national scale (PostgreSQL plans) ---------------------------------

def _fill_people(count: int) -> None:
    """A register of `count` people with made-up names, analysed, so the planner chooses as it
    would on a real one (on an empty table any index, or none, is as cheap)."""
    from sqlalchemy import text

    db.session.execute(text(
        "INSERT INTO people (hsa_id, name, protected_identity) "
        "SELECT 'SE2321000131-F' || n, 'Fyll ' || md5(n::text), false "
        "FROM generate_series(1, :count) AS n"), {"count": count})
    # As autovacuum would: the new rows moved out of the GIN index's pending list.
    db.session.execute(text("SELECT gin_clean_pending_list('ix_people_name_trgm')"))
    db.session.execute(text("ANALYZE people"))


def _plan(query) -> str:
    from sqlalchemy import text

    compiled = query.compile(db.engine, compile_kwargs={"literal_binds": True})
    rows = db.session.execute(text("EXPLAIN " + str(compiled))).scalars()
    return "\n".join(rows)


@pytest.mark.postgresql_only
def test_each_match_of_the_box_is_served_by_an_index(app, as_user, dialect):
    _fill_people(50_000)
    with as_user("servicecenter"):
        by_name = _plan(select(Person.id).where(search.condition(Person, "Gustav Gran")))
        by_number = _plan(select(Person.id).where(search.condition(Person, "601212-0231")))
        issuances = _plan(select(Issuance.id).where(search.condition(Issuance, "Gustav")))
        deviations = _plan(select(Deviation.id).where(search.condition(Deviation, "12345678")))
    db.session.rollback()
    assert "ix_people_name_trgm" in by_name, by_name
    assert "Seq Scan" not in by_number, by_number
    assert "ix_people_name_trgm" in issuances, issuances
    assert "ix_deviations_card_serial" in deviations, deviations
