"""The stock: batches all or none, moves, losses, restock and destruction, the summary."""

from datetime import date

import pytest

from app.errors import NotFound, RuleViolation
from app.validation import FieldError
from app.workflow import stock
from models import Deviation, PickupPoint, ReserveCard
from tests.workflow_support import apply, audit_actions, count, free_cards


@pytest.fixture(autouse=True)
def _frozen(set_now):
    set_now(date(2026, 3, 2))


def test_parse_and_range():
    assert stock.parse_serials("0001234567\n 0001234568, 0001234567;0001234569") == [
        "0001234567", "0001234568", "0001234569"]
    assert stock.serial_range("0000999998", "0001000001") == [
        "0000999998", "0000999999", "0001000000", "0001000001"]
    for first, last in [("1000010", "1000000"), ("1000000", "10000001")]:
        with pytest.raises(FieldError) as caught:
            stock.serial_range(first, last)
        assert caught.value.field == "last"
    with pytest.raises(FieldError) as caught:
        stock.parse_serials("12345678, abc\n87654321\nx1")
    assert caught.value.field == "serials"
    assert "line 1 (\u201cabc\u201d), line 3 (\u201cx1\u201d)" in caught.value.message


@pytest.mark.both_databases
def test_register_batch_all_or_none(app, as_user, session):
    point = session.query(PickupPoint).first()
    before = count(ReserveCard)
    taken = free_cards(1)[0]
    with as_user("servicecenter"):
        with pytest.raises(FieldError) as caught:
            stock.register_batch(["8800000001", taken], "473", "LOA2", "2030-01-01", point.id)
        assert caught.value.field == "serials" and taken in caught.value.message
        assert count(ReserveCard) == before
        for field, args in [("loa", ("473", "LOA9", "2030-01-01")),
                            ("expires_on", ("473", "LOA2", "2026-03-02")),
                            ("product_code", ("", "LOA2", "2030-01-01"))]:
            with pytest.raises(FieldError) as caught:
                stock.register_batch(["8800000001"], *args, point.id)
            assert caught.value.field == field
        with pytest.raises(NotFound):
            stock.register_batch(["8800000001"], "473", "LOA2", "2030-01-01", 9999)
        created = stock.register_batch(stock.serial_range("8800000001", "8800000100"), "573",
                                       "LOA2", date(2031, 1, 1), point.id)
    assert created == 100 and count(ReserveCard) == before + 100
    card = stock.find_card("8800000050")
    assert (card.status, card.product_code, card.pickup_point_id) == ("in_stock", "573", point.id)
    assert "card.register_batch" in audit_actions(entity="pickup_point")


def test_move_lose_restock_destroy(app, as_user, session):
    points = session.query(PickupPoint).order_by(PickupPoint.id).all()
    sealed, spare = free_cards(2)
    with as_user("servicecenter"):
        assert stock.move_card(sealed, points[1].id).pickup_point_id == points[1].id
        assert stock.mark_lost(sealed, "Borttappat i lagret").status == "lost"
        assert count(Deviation) == 0  # lost from the stock: no holder, no deviation
        with pytest.raises(RuleViolation) as caught:
            stock.restock(sealed)
        assert caught.value.rule == "transition_not_allowed"
        assert stock.destroy(sealed).status == "destroyed"
        assert stock.destroy(spare).status == "destroyed"
    issuance = apply(as_user)
    with as_user("servicecenter"):
        stock.mark_lost(issuance.card.serial, "Mottagaren har tappat kortet")
    deviation = session.query(Deviation).one()
    assert (deviation.type, deviation.issuance_id, deviation.person_id) == (
        "card_lost", issuance.id, issuance.recipient_id)
    assert deviation.unit_id == issuance.recipient.unit_id
    with pytest.raises(NotFound):
        stock.find_card("1111111111")
    assert audit_actions(entity="card")[-1] == "card.lost"


def test_stock_summary(app, session):
    summary = {row["pickup_point"]: row for row in stock.stock_summary()}
    halmstad = summary["Servicecenter Halmstad"]
    # "In stock" is what can be lent today (tests/test_stock_lendable.py): LOA2, not expired.
    sealed = session.query(ReserveCard).filter_by(
        pickup_point_id=halmstad["pickup_point_id"], status="in_stock").all()
    lendable = [c for c in sealed if c.loa == "LOA2" and c.expires_on >= date(2026, 3, 2)
                and c.bound_person_id is None]
    assert len(sealed) == 25 and halmstad["counts"]["in_stock"] == 25
    assert halmstad["in_stock"] == len(lendable) < 25 and halmstad["min_stock"] == 10
    assert halmstad["below_min_stock"] is False
    assert halmstad["expiring_soon"] >= 1  # some demo cards are near or past their expiry
    varberg = summary["Reception Varbergs sjukhus"]
    session.query(PickupPoint).filter_by(id=varberg["pickup_point_id"]).update({"min_stock": 30})
    session.commit()
    row = [r for r in stock.stock_summary() if r["pickup_point"].startswith("Reception")][0]
    assert row["below_min_stock"] is True and row["counts"] == {"in_stock": 25}
