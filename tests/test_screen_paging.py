"""Keyset paging of the list screens (issuances, deviations, people): the pager's "next" and
"previous" links carry a cursor (`after_<View>` / `before_<View>`, the id of a row), so deep
pages are read by index. Walking by "next" shows every row exactly once and in order, also
with many rows tied on the sort key; walking back by "previous" shows the same pages; filters
and page size stay in the links; a malformed cursor is a 400 naming it, a cursor that is no row
of the list (gone, or outside the login's scope) shows the first page with a message."""

import html
import re
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import case, insert, select

from app.access import scope
from app.demo import hsa
from app.extensions import db
from models import Deviation, Issuance, Person, ReserveCard, Unit
from tests.access_support import MASK

pytestmark = pytest.mark.both_databases

PEOPLE, DEVIATIONS, ISSUANCES = 230, 260, 240
NAMES = ("Anna Sida", "Åsa Sida", "Björn Sida", "Örjan Sida", "Eva Sida")  # ties on purpose
START = datetime(2026, 3, 2, 8, 0)
PAGE_SIZE = 20


def _fill():
    """Hundreds of people (every 7th protected), deviations over every unit and returned
    issuances (every 4th by registered mail), five rows at each moment: the sort key ties
    all the way down."""
    units = db.session.execute(select(Unit.id).order_by(Unit.id)).scalars().all()
    db.session.execute(insert(Person), [
        {"hsa_id": hsa(f"SP{n:06d}"), "name": NAMES[n % len(NAMES)],
         "unit_id": units[n % len(units)], "protected_identity": n % 7 == 0}
        for n in range(PEOPLE)])
    people = db.session.execute(
        select(Person.id).where(Person.hsa_id.like(hsa("SP%")))).scalars().all()
    db.session.execute(insert(Deviation), [
        {"type": "manual", "status": "open" if n % 3 else "closed",
         "unit_id": units[n % len(units)], "person_id": people[n % len(people)],
         "description": f"Sida {n}", "created_at": START + timedelta(minutes=n // 5)}
        for n in range(DEVIATIONS)])
    cards = db.session.execute(select(ReserveCard.id)).scalars().all()
    db.session.execute(insert(Issuance), [
        {"channel": "in_person" if n % 4 else "registered_mail", "status": "returned",
         "card_id": cards[n % len(cards)], "recipient_id": people[n % len(people)],
         "reason": "forgotten", "created_at": START + timedelta(hours=n // 5),
         "original_days": 10}
        for n in range(ISSUANCES)])
    db.session.commit()


@pytest.fixture
def filled(app, dialect):
    _fill()
    return dialect


def _newest_first(model, *where):
    return select(model.id).where(*where).order_by(model.created_at.desc(), model.id.desc())


def _people_by_shown_name():
    shown = case((Person.protected_identity.is_(True), MASK), else_=Person.name)
    return select(Person.id).order_by(shown, Person.id)


LISTS = {
    # name: (view, the first page's URL, the whole list's order for Servicecenter)
    "issuances": ("IssuanceView", "/issuances/list/", lambda: _newest_first(Issuance)),
    "deviations": ("DeviationView", "/deviations/list/", lambda: _newest_first(Deviation)),
    "people": ("PersonView", "/registers/people/list/", _people_by_shown_name),
}


def _page(client, url):
    answer = client.get(url)
    assert answer.status_code == 200, (url, answer.status_code)
    return answer.get_data(as_text=True)


def _row_ids(page) -> list[int]:
    """The rows of a list page, by the ids of their show links, in the page's order."""
    return [int(pk) for pk in dict.fromkeys(re.findall(r'href="/[\w/]+/show/(\d+)', page))]


def _link(page, label) -> str | None:
    found = re.search(r'<a href="([^"#]+)" aria-label="' + label + '"', page)
    return html.unescape(found.group(1)) if found else None


def _walk(client, url, label="Nästa sida"):
    """Every page from `url` on by the pager's link `label`: the pages' rows and the links."""
    pages, links = [], []
    while url:
        page = _page(client, url)
        pages.append(_row_ids(page))
        url = _link(page, label)
        links.append(url)
        assert len(links) < 100, "the walk does not end"
    return pages, links


@pytest.mark.parametrize("name", LISTS)
def test_walking_by_next_shows_every_row_once_in_order(filled, login, name):
    view, url, expected = LISTS[name]
    expected_ids = db.session.execute(expected()).scalars().all()
    assert len(expected_ids) >= 230
    pages, links = _walk(login("Servicecenter"), f"{url}?psize_{view}={PAGE_SIZE}")
    assert [pk for page in pages for pk in page] == expected_ids
    assert all(len(page) == PAGE_SIZE for page in pages[:-1])
    # Each "next" carries the cursor (a row's id, nothing of the row itself) and the number.
    for number, link in enumerate(links[:-1], start=1):
        args = parse_qs(urlsplit(link).query)
        assert args[f"after_{view}"][0].isdigit()
        assert args[f"page_{view}"] == [str(number)]
        assert args[f"psize_{view}"] == [str(PAGE_SIZE)]
    assert links[-1] is None


@pytest.mark.parametrize("name", LISTS)
def test_walking_back_by_previous_shows_the_same_pages(filled, login, name):
    view, url, _expected = LISTS[name]
    client = login("Servicecenter")
    forward, links = _walk(client, f"{url}?psize_{view}={PAGE_SIZE}")
    last = links[-2]  # the link that led to the last page
    backward, back_links = _walk(client, last, label="Föregående sida")
    assert backward == forward[::-1]
    # Back to the first page the pager leaves the cursor out: page 1 is read as page 1.
    first_link = back_links[-2]
    assert not {f"after_{view}", f"before_{view}", f"page_{view}"} \
        & set(parse_qs(urlsplit(first_link).query))
    assert any(f"before_{view}" in link for link in back_links[:-2])


def test_the_cursor_page_is_the_offset_page(filled, login):
    client = login("Servicecenter")
    first = _page(client, "/deviations/list/")
    following = _link(first, "Nästa sida")
    assert "after_DeviationView=" in following
    assert _row_ids(_page(client, following)) == _row_ids(
        _page(client, "/deviations/list/?page_DeviationView=1"))
    # A deep page asked for by number (an offset) is the same rows as the walk reaches.
    pages, _ = _walk(client, "/issuances/list/?psize_IssuanceView=20")
    assert _row_ids(_page(client, "/issuances/list/?psize_IssuanceView=20"
                                  "&page_IssuanceView=9")) == pages[9]


def test_filters_are_kept_in_the_links(filled, login):
    # The search box finds no protected person for a login without clearance.
    found = select(Person.id).where(Person.name.like("% Sida"),
                                    Person.protected_identity.is_(False))
    expected = db.session.execute(
        _newest_first(Issuance, Issuance.channel == "in_person",
                      Issuance.recipient_id.in_(found))).scalars().all()
    assert len(expected) >= 120
    client = login("Servicecenter")
    pages, links = _walk(client, "/issuances/list/?_flt_0_channel=in_person"
                                 "&psize_IssuanceView=20&q=Sida")
    assert [pk for page in pages for pk in page] == expected
    for link in links[:-1]:
        args = parse_qs(urlsplit(link).query)
        assert args["_flt_0_channel"] == ["in_person"] and args["q"] == ["Sida"]


@pytest.mark.parametrize("name", LISTS)
def test_a_malformed_cursor_is_a_400_naming_it(app, login, name):
    view, url, _expected = LISTS[name]
    client = login("Servicecenter")
    for arg in (f"after_{view}", f"before_{view}"):
        for cursor in ("abc", "0", "-3", "1.5", "", "2147483648", "99999999999999999999"):
            answer = client.get(f"{url}?{arg}={cursor}")
            assert answer.status_code == 400, (arg, cursor, answer.status_code)
            assert arg in answer.get_data(as_text=True)


@pytest.mark.parametrize("name", LISTS)
def test_a_cursor_that_is_no_row_shows_the_first_page_with_a_message(filled, login, name):
    view, url, _expected = LISTS[name]
    client = login("Servicecenter")
    first = _row_ids(_page(client, url))
    for arg in (f"after_{view}", f"before_{view}"):
        page = _page(client, f"{url}?{arg}=2147483647&page_{view}=40")
        assert "pekar inte längre på en rad i listan" in page
        assert _row_ids(page) == first


def test_a_chefs_cursor_naming_another_units_deviation_leads_nowhere(filled, login,
                                                                    as_user):
    with as_user("chef") as chef:
        own_units = scope.visible_unit_ids(chef)
    own = db.session.execute(_newest_first(Deviation, Deviation.unit_id.in_(own_units))
                             ).scalars().all()
    outside = db.session.execute(select(Deviation.id).where(
        Deviation.unit_id.not_in(own_units)).order_by(Deviation.id)).scalars().all()
    assert len(own) > PAGE_SIZE and outside
    client = login("Chef")
    pages, _ = _walk(client, f"/deviations/list/?psize_DeviationView={PAGE_SIZE}")
    assert [pk for page in pages for pk in page] == own
    for hidden in outside[:3]:
        page = _page(client, f"/deviations/list/?after_DeviationView={hidden}")
        assert "pekar inte längre på en rad i listan" in page
        assert set(_row_ids(page)) <= set(own)


def test_an_order_whose_key_may_be_null_pages_by_offset(filled, login):
    client = login("Servicecenter")
    page = _page(client, "/issuances/list/?_oc_IssuanceView=receipt_due"
                         "&_od_IssuanceView=asc")
    assert "after_IssuanceView" not in page and "before_IssuanceView" not in page
    assert "page_IssuanceView=1" in html.unescape(page)


def test_a_sort_link_starts_the_new_order_at_its_first_page(filled, login):
    client = login("Servicecenter")
    following = _link(_page(client, "/deviations/list/"), "Nästa sida")
    page = html.unescape(_page(client, following))
    sort_links = re.findall(r'<th><a href=([^ >]*_oc_DeviationView=[^ >]*)>', page)
    assert sort_links
    for link in sort_links:
        args = parse_qs(urlsplit(link).query)
        assert not {"after_DeviationView", "before_DeviationView", "page_DeviationView"} \
            & set(args), link
