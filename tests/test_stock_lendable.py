""""In stock" means what can be lent today: sealed, LOA2, not past its own expiry, not bound to
another person. Expired cards are counted apart ("do not lend"), the minimum-stock warning uses
the lendable count, and the card to lend first is never an expired one."""

from datetime import date, datetime

import pytest

from app.workflow import stock
from models import Person, PickupPoint, ReserveCard

TODAY = date(2026, 3, 2)


@pytest.fixture(autouse=True)
def _frozen(set_now):
    set_now(TODAY)


@pytest.fixture
def point(session):
    """A pickup point with min stock 3: two lendable cards, one expired (the oldest of all),
    one LOA3, one bound to a person who had it before, one issued."""
    point = PickupPoint(name="Testlager Falkenberg", min_stock=3, active=True)
    session.add(point)
    session.flush()
    person = session.query(Person).first()
    created = datetime(2026, 1, 1)
    for serial, loa, expires, status, bound in (
        ("9752271999000001", "LOA2", date(2026, 2, 1), "in_stock", None),   # expired
        ("9752271999000002", "LOA2", date(2026, 6, 1), "in_stock", None),   # lend first
        ("9752271999000003", "LOA2", date(2027, 6, 1), "in_stock", None),
        ("9752271999000004", "LOA3", date(2026, 4, 1), "in_stock", None),
        ("9752271999000005", "LOA2", date(2026, 4, 1), "in_stock", person.id),
        ("9752271999000006", "LOA2", date(2026, 4, 1), "issued", person.id),
    ):
        session.add(ReserveCard(serial=serial, product_code="573", loa=loa, expires_on=expires,
                                status=status, pickup_point_id=point.id,
                                bound_person_id=bound, created_at=created))
    session.commit()
    return point


def _row(point):
    return next(r for r in stock.stock_summary() if r["pickup_point_id"] == point.id)


@pytest.mark.both_databases
def test_in_stock_counts_only_cards_lendable_today(point):
    row = _row(point)
    assert row["in_stock"] == 2
    assert row["expired_in_stock"] == 1
    assert row["not_lendable_in_stock"] == 2  # LOA3, bound to a person
    assert row["counts"] == {"in_stock": 5, "issued": 1}
    assert row["below_min_stock"] is True  # 2 lendable < 3, although 5 envelopes lie there


@pytest.mark.both_databases
def test_the_card_to_lend_first_is_the_oldest_lendable_never_an_expired_one(point):
    assert _row(point)["lend_first"] == {"serial": "9752271999000002",
                                         "expires_on": date(2026, 6, 1)}


def test_without_the_binding_rule_a_bound_card_is_lendable(app, point):
    app.config["CARD_BOUND_TO_FIRST_HOLDER"] = False
    assert _row(point)["in_stock"] == 3


def test_the_stock_screen_shows_lendable_and_expired_apart(login, point):
    html = login("Servicecenter").get("/stock/cards/list/").get_data(as_text=True)
    assert "Utgångna, lånas inte ut" in html
    row = html[html.index(f'data-pickup-point="{point.id}"'):]
    row = row[:row.index("</tr>")]
    assert '<td data-label="I lager" class="rk-lendable">2' in row
    assert "Under minsta lager" in row
    assert "9752271999000002" in row and "9752271999000001" not in row


def test_the_counts_call_in_stock_only_what_can_be_lent_today(point):
    from app.workflow import queries

    lendable = sum(row["in_stock"] for row in stock.stock_summary())
    assert queries.dashboard_counts()["cards_in_stock"] == lendable
