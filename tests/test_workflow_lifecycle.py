"""Receipt, block, extension, return, and the transition table (every step x every status)."""

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, update

from app.errors import RuleViolation
from app.validation import FieldError
from app.workflow import approval, lifecycle, mail_flow
from app.workflow.lifecycle import TRANSITIONS, can_transition
from models import ISSUANCE_STATUSES, Deviation, Extension, Issuance, Receipt, ReserveCard
from tests.workflow_support import ALL_CHECKS, apply, approve, force_status, mails

ISSUED = date(2026, 3, 2)
PDF = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


@pytest.fixture(autouse=True)
def _frozen(set_now):
    set_now(ISSUED)


def rule_of(call):
    with pytest.raises(RuleViolation) as caught:
        call()
    return caught.value.rule


def test_register_receipt_with_scan(app, as_user, session):
    issuance = apply(as_user)
    with as_user("servicecenter"):
        for content in (b"just text", b"GIF89a" + b"\x00" * 20):
            with pytest.raises(FieldError) as caught:
                lifecycle.register_receipt(issuance.id, content, "kvittens.txt")
            assert caught.value.field == "scan"
        app.config["MAX_UPLOAD_BYTES"] = 40
        with pytest.raises(FieldError) as too_big:
            lifecycle.register_receipt(issuance.id, PNG + b"\x00" * 20, "kvittens.png")
        assert too_big.value.field == "scan"
        app.config["MAX_UPLOAD_BYTES"] = 5 * 1024 * 1024
        assert session.get(Receipt, issuance.receipt.id).received_at is None
        lifecycle.register_receipt(issuance.id, PDF, "kvittens.pdf")
        assert rule_of(lambda: lifecycle.register_receipt(issuance.id)) == (
            "transition_not_allowed")
    receipt = session.get(Receipt, issuance.receipt.id)
    assert receipt.received_at is not None and receipt.scan_mime == "application/pdf"
    stored = lifecycle.scan_file(session.get(Issuance, issuance.id))
    assert stored.read_bytes() == PDF
    assert Path(app.config["UPLOAD_DIR"]) in stored.parents
    assert not str(stored).startswith(str(Path(app.root_path) / "static"))


def test_extension_window_and_once_only(app, as_user, set_now, session):
    issuance = apply(as_user, reason="lost_stolen_damaged", valid_until=ISSUED + timedelta(20))
    approve(as_user, issuance.id)
    with as_user("servicecenter"):
        set_now(date(2026, 10, 3))  # a day past seven months
        assert rule_of(lambda: lifecycle.extend(issuance.id)) == "extension_window_passed"
        set_now(date(2026, 10, 2))  # exactly seven months: allowed
        with pytest.raises(FieldError) as caught:
            lifecycle.extend(issuance.id, same_reason=False)
        assert caught.value.field == "same_reason"
        extended = lifecycle.extend(issuance.id)
        assert extended.status == "extended"
        # expired long ago, not returned: the new period starts on the day of the extension
        assert extended.valid_until == date(2026, 10, 2) + timedelta(20)
        assert extended.extension.previous_valid_until == ISSUED + timedelta(20)
        assert rule_of(lambda: lifecycle.extend(issuance.id)) == "extension_already_used"
    assert mails("issuance_extended", issuance.id)


def test_block_and_return(app, as_user, session):
    issuance = apply(as_user)
    assert lifecycle.find_open_issuance_by_serial(issuance.card.serial).id == issuance.id
    with as_user("servicecenter"):
        with pytest.raises(FieldError):
            lifecycle.block(issuance.id, " ")
        blocked = lifecycle.block(issuance.id, "Kortet stulet")
        assert (blocked.status, blocked.block_reason) == ("blocked", "Kortet stulet")
        assert blocked.blocked_by_user_id is not None
        assert mails("issuance_blocked", issuance.id)
        with pytest.raises(FieldError):
            lifecycle.return_card(issuance.id, then="keep")
        returned = lifecycle.return_card(issuance.id, then="destroy")
    assert returned.status == "returned" and returned.returned_at is not None
    assert session.get(ReserveCard, issuance.card_id).status == "destroyed"
    assert rule_of(lambda: lifecycle.block(issuance.id, "x")) == "transition_not_allowed"
    other = apply(as_user, recipient="Björn", reason="awaiting_new_card")
    with as_user("servicecenter"):
        lifecycle.return_card(other.id)
        card = session.get(ReserveCard, other.card_id)
        assert card.status == "returned"
        from app.workflow import stock

        stock.restock(card.serial)
    card = session.get(ReserveCard, other.card_id)
    assert card.status == "in_stock" and card.bound_person_id == other.recipient_id


# step -> (user, call(issuance id)); each is called from every status.
STEPS = {
    "approve": ("televaxeln", lambda i: approval.approve(i, "K-1", ALL_CHECKS)),
    "reject": ("televaxeln", lambda i: approval.reject(i, "Fel")),
    "register_receipt": ("servicecenter", lambda i: lifecycle.register_receipt(i)),
    "block": ("servicecenter", lambda i: lifecycle.block(i, "Spärra")),
    "extend": ("servicecenter", lambda i: lifecycle.extend(i)),
    "return_card": ("servicecenter", lambda i: lifecycle.return_card(i)),
    "report_lost": ("servicecenter", lambda i: lifecycle.report_lost(i, "Borta")),
    "dispatched": ("korthandlaggare", lambda i: mail_flow.dispatched(i, "RR123456785SE")),
    "receipt_returned": ("korthandlaggare", lambda i: mail_flow.receipt_returned(i)),
    "certificate_issued": ("korthandlaggare", lambda i: mail_flow.certificate_issued(i)),
}


def _reset(session, issuance_id, status):
    session.execute(delete(Extension).where(Extension.issuance_id == issuance_id))
    session.execute(delete(Deviation).where(Deviation.issuance_id == issuance_id))
    session.execute(update(Receipt).where(Receipt.issuance_id == issuance_id)
                    .values(received_at=None))
    # approved and with its certificate, so that the extension has only its status to check
    force_status(issuance_id, status, approved_at=datetime(2026, 3, 2, 9),
                 certificate_issued_at=datetime(2026, 3, 2, 9))


def test_every_step_from_every_status(app, as_user, session):
    """Allowed: the step succeeds. Not allowed: transition_not_allowed (extension_not_allowed
    for the extension, which has its own rule code)."""
    issuance_id = apply(as_user).id
    assert set(STEPS) | {"expire"} == set(TRANSITIONS)
    for step_name, (user, call) in STEPS.items():
        for status in ISSUANCE_STATUSES:
            _reset(session, issuance_id, status)
            allowed = can_transition(status, step_name)
            with as_user(user):
                if allowed:
                    call(issuance_id)
                    continue
                with pytest.raises(RuleViolation) as caught:
                    call(issuance_id)
            expected = "extension_not_allowed" if step_name == "extend" else (
                "transition_not_allowed")
            assert caught.value.rule == expected, (step_name, status, caught.value)
            assert session.get(Issuance, issuance_id).status == status


@pytest.mark.both_databases
def test_receipts_due_and_dashboard(app, as_user, set_now, session):
    from app.workflow import queries

    late = apply(as_user)
    set_now(ISSUED + timedelta(days=3))
    soon = apply(as_user, recipient="Björn", reason="awaiting_new_card",
                 attesters=("Gustav", "Helena"))  # the caller given as attester 1 too: accepted
    assert [a.person.name for a in soon.attesters] == ["Gustav Gran", "Helena Håkansson"]
    rows = session.execute(queries.receipts_due(now=datetime(2026, 3, 11, 9))).all()
    assert [(issuance.id, int(days)) for issuance, days in rows] == [(late.id, -2), (soon.id, 1)]
    counts = queries.dashboard_counts(now=datetime(2026, 3, 11, 9))
    assert counts["awaiting_approval"] == 2
    assert (counts["receipts_overdue"], counts["receipts_due"]) == (1, 1)
    # lendable today: the demo's LOA3 cards and those past their own expiry are not stock
    assert counts["cards_in_stock"] == 40 and counts["open_issuances"] == 2
