"""Keyset ("cursor") paging of the API's lists: people, deviations and issuances page deeply by
`after=` and the answer's `next` link, one implementation for the three. Walking every page by
`next` returns every row exactly once and in order, also while rows are added during the walk;
a cursor that is not a row of the list is a 400 naming `after`; and every page keeps to the
access policy (protected identity masked, a Chef's deviations only from the Chef's units)."""

from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import case, func, insert, select

from app.access import scope
from app.demo import hsa
from app.extensions import db
from models import Deviation, Issuance, Person, ReserveCard, Unit
from tests.access_support import MASK, cleared_login, rison

pytestmark = pytest.mark.both_databases

PEOPLE, DEVIATIONS, ISSUANCES = 330, 310, 260
FIRST_NAMES = ("Anna", "Åsa", "Björn", "Örjan", "Cecilia", "Eva", "Nils")  # ties on purpose
START = datetime(2026, 3, 2, 8, 0)


def _fill(app):
    """Hundreds of people (every 9th protected), deviations over every unit (many made at the
    same minute) and returned issuances, written in one go."""
    units = db.session.execute(select(Unit.id).order_by(Unit.id)).scalars().all()
    db.session.execute(insert(Person), [
        {"hsa_id": hsa(f"PG{n:06d}"), "name": f"{FIRST_NAMES[n % len(FIRST_NAMES)]} Paging",
         "unit_id": units[n % len(units)], "protected_identity": n % 9 == 0,
         "email": f"paging{n}@example.se"}
        for n in range(PEOPLE)])
    people = db.session.execute(
        select(Person.id).where(Person.hsa_id.like(hsa("PG%")))).scalars().all()
    db.session.execute(insert(Deviation), [
        {"type": "manual", "status": "open", "unit_id": units[n % len(units)],
         "person_id": people[n % len(people)], "description": f"Paging {n}",
         "created_at": START + timedelta(minutes=n // 4)}
        for n in range(DEVIATIONS)])
    cards = db.session.execute(select(ReserveCard.id)).scalars().all()
    db.session.execute(insert(Issuance), [
        {"channel": "in_person", "status": "returned", "card_id": cards[n % len(cards)],
         "recipient_id": people[n % len(people)], "reason": "forgotten",
         "created_at": START + timedelta(hours=n), "original_days": 10}
        for n in range(ISSUANCES)])
    db.session.commit()


@pytest.fixture
def filled(app, dialect):
    _fill(app)
    return dialect


def _masked_name():
    return case((Person.protected_identity.is_(True), MASK), else_=Person.name)


LISTS = {
    # name: (the first page's URL, the expected order of the whole list for an uncleared login)
    "people": ("/api/v1/people/", lambda: select(Person.id).order_by(_masked_name(), Person.id)),
    "deviations": ("/api/v1/deviations/",
                   lambda: select(Deviation.id).order_by(Deviation.created_at.desc(),
                                                         Deviation.id.desc())),
    "issuances": ("/api/v1/issuances/", lambda: select(Issuance.id).order_by(Issuance.id.desc())),
}


def _walk(client, headers, url, between_pages=None):
    """Every page from `url` on by `next`: the rows, and the `next` links followed."""
    rows, links = [], []
    while url:
        answer = client.get(url, headers=headers)
        assert answer.status_code == 200, (url, answer.get_json())
        page = answer.get_json()
        rows += page["result"]
        url = page["next"]
        links.append(url)
        assert len(links) < 100, "the walk does not end"
        if between_pages:
            between_pages(len(links))
    return rows, links


def _ids(rows):
    return [row["id"] for row in rows]


@pytest.mark.parametrize("name", LISTS)
def test_walking_by_next_returns_every_row_once_in_order(filled, client, api_headers, name):
    url, expected = LISTS[name]
    expected_ids = db.session.execute(expected()).scalars().all()
    assert len(expected_ids) >= 250
    rows, links = _walk(client, api_headers("Servicecenter"), url)
    assert _ids(rows) == expected_ids
    # The cursor is a row's id and nothing else: no name or other value of the row in a URL.
    for link in filter(None, links):
        assert set(parse_qs(urlsplit(link).query)) <= {"after", "q"}
        assert parse_qs(urlsplit(link).query)["after"][0].isdigit()


def test_page_still_works_for_small_offsets_and_agrees_with_the_cursor(filled, client,
                                                                     api_headers):
    headers = api_headers("Servicecenter")
    for url, offset_query in (("/api/v1/people/", f"q={rison(page=1, page_size=20)}"),
                              ("/api/v1/deviations/", f"q={rison(page=1, page_size=20)}"),
                              ("/api/v1/issuances/", "page=1&page_size=20")):
        first_query = offset_query.replace("page=1", "page=0").replace("page:1", "page:0")
        first = client.get(f"{url}?{first_query}", headers=headers).get_json()
        second = client.get(f"{url}?{offset_query}", headers=headers).get_json()
        following = client.get(first["next"], headers=headers).get_json()
        assert len(first["result"]) == 20
        assert _ids(following["result"]) == _ids(second["result"])
        assert following["count"] == first["count"]  # the total, not what is left


@pytest.mark.parametrize("name", LISTS)
def test_rows_added_during_the_walk_neither_repeat_nor_push_rows_off(filled, client,
                                                                     api_headers, name):
    url, expected = LISTS[name]
    before = db.session.execute(expected()).scalars().all()

    def add_rows(pages_read):
        if pages_read in (2, 5):
            _add_rows_everywhere_in_the_order(pages_read)

    rows, _ = _walk(client, api_headers("Servicecenter"), url, add_rows)
    seen = _ids(rows)
    assert len(seen) == len(set(seen)), "a row came twice"
    assert [row_id for row_id in seen if row_id in set(before)] == before


def _add_rows_everywhere_in_the_order(salt):
    """Rows that sort first, last and in the middle of each list."""
    unit = db.session.execute(select(func.min(Unit.id))).scalar()
    db.session.execute(insert(Person), [
        {"hsa_id": hsa(f"NEW{salt}{n}"), "name": name, "unit_id": unit,
         "protected_identity": False}
        for n, name in enumerate(("Aaron Först", "Nils Paging", "Östen Sist"))])
    person = db.session.execute(select(func.max(Person.id))).scalar()
    db.session.execute(insert(Deviation), [
        {"type": "manual", "status": "open", "unit_id": unit, "person_id": person,
         "created_at": moment}
        for moment in (START - timedelta(days=1), START + timedelta(minutes=30),
                       START + timedelta(days=30))])
    card = db.session.execute(select(func.min(ReserveCard.id))).scalar()
    db.session.execute(insert(Issuance), [
        {"channel": "in_person", "status": "returned", "card_id": card, "recipient_id": person,
         "reason": "forgotten", "created_at": START, "original_days": 10}])
    db.session.commit()


@pytest.mark.parametrize("name", LISTS)
def test_a_cursor_that_is_no_row_of_the_list_is_a_400_naming_after(app, client, api_headers,
                                                                   name):
    headers = api_headers("Servicecenter")
    for cursor in ("abc", "0", "-3", "1.5", "", "2147483648", "99999999999999999999",
                   "2147483647"):
        answer = client.get(f"{LISTS[name][0]}?after={cursor}", headers=headers)
        assert answer.status_code == 400, (cursor, answer.get_json())
        assert "after" in answer.get_json()["errors"], cursor
    # The key the API hands its keyset page on by is no page a client can give in `q`.
    if name != "issuances":
        answer = client.get(f"{LISTS[name][0]}?q=" + rison(__keyset_page__=10**20),
                            headers=headers)
        assert answer.status_code == 200, answer.get_json()


@pytest.mark.parametrize("name", LISTS)
def test_a_changed_cursor_in_a_next_link_is_a_400_not_a_server_error(filled, client,
                                                                     api_headers, name):
    headers = api_headers("Servicecenter")
    following = client.get(LISTS[name][0], headers=headers).get_json()["next"]
    for tampered in (following + "x", following.replace("after=", "after=-"),
                     following + "%00", following.replace("after=", "after=9999999")):
        answer = client.get(tampered, headers=headers)
        assert answer.status_code == 400, (tampered, answer.get_json())
        assert "after" in answer.get_json()["errors"]


def test_a_chef_walks_only_their_own_units_and_no_cursor_leads_out(filled, client,
                                                                   api_headers, as_user):
    with as_user("chef") as chef:
        own_units = scope.visible_unit_ids(chef)
    own = db.session.execute(
        select(Deviation.id).where(Deviation.unit_id.in_(own_units))
        .order_by(Deviation.created_at.desc(), Deviation.id.desc())).scalars().all()
    outside = db.session.execute(
        select(Deviation.id).where(Deviation.unit_id.not_in(own_units))
        .order_by(Deviation.id)).scalars().all()
    assert len(own) >= 75 and outside
    headers = api_headers("Chef")
    rows, _ = _walk(client, headers, f"/api/v1/deviations/?q={rison(page_size=20)}")
    assert _ids(rows) == own
    assert {row["unit_id"] for row in rows} <= own_units
    # A cursor naming another unit's deviation is refused like one naming none: it tells
    # nothing about that deviation and reaches no row beyond the Chef's units.
    for hidden in outside[:5]:
        answer = client.get(f"/api/v1/deviations/?after={hidden}", headers=headers)
        assert answer.status_code == 400, answer.get_json()
        assert "after" in answer.get_json()["errors"]
    # The Chef's own cursor with a filter still reads only the Chef's units.
    last_page = client.get(f"/api/v1/deviations/?after={own[10]}&q="
                           + rison(filters=[{"col": "status", "opr": "eq", "value": "open"}]),
                           headers=headers).get_json()
    assert _ids(last_page["result"]) == own[11:36]


def test_every_page_masks_a_protected_person_for_a_login_without_clearance(filled, client,
                                                                           api_headers):
    protected = dict(db.session.execute(
        select(Person.id, Person.name).where(Person.protected_identity.is_(True))).all())
    assert len(protected) >= 30
    rows, links = _walk(client, api_headers("Servicecenter"), "/api/v1/people/")
    shown = [row for row in rows if row["id"] in protected]
    assert len(shown) == len(protected)
    for row in shown:
        assert row["protected_identity"] is True
        assert (row["name"], row["personal_number"], row["email"]) == (MASK, None, None)
    deviations, _ = _walk(client, api_headers("Servicecenter"), "/api/v1/deviations/")
    for row in deviations:
        if row["person"]["protected_identity"]:
            assert row["person"]["name"] == MASK


def test_a_cleared_login_walks_by_the_real_names(filled, client, api_headers, app):
    login = cleared_login(app)
    expected = db.session.execute(
        select(Person.id).order_by(Person.name, Person.id)).scalars().all()
    rows, links = _walk(client, api_headers(login), "/api/v1/people/")
    assert _ids(rows) == expected
    names = {row["name"] for row in rows}
    assert MASK not in names
    # Not even for a cleared login does a name travel in the URL.
    assert not any(name in link for link in filter(None, links) for name in names)


def test_the_openapi_document_gives_the_cursor_of_every_paged_list(app, client, api_headers):
    document = client.get("/api/v1/_openapi", headers=api_headers("Admin")).get_json()
    assert document["components"]["parameters"]["after"]["in"] == "query"
    for path in ("/api/v1/people/", "/api/v1/deviations/", "/api/v1/issuances/"):
        operation = document["paths"][path]["get"]
        assert {"$ref": "#/components/parameters/after"} in operation["parameters"], path
    schema = document["components"]["schemas"]["ListPageSchema"]["properties"]
    assert {"next", "count", "count_exact"} <= set(schema)
