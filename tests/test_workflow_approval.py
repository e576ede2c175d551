"""Televäxeln's approval and rejection, and the approval queue."""

from datetime import date

import pytest
from sqlalchemy import event

from app.access import person_label
from app.errors import RuleViolation
from app.extensions import db
from app.validation import FieldError
from app.workflow import approval, queries
from models import Issuance, ReserveCard
from tests.workflow_support import ALL_CHECKS, apply, approve, audit_actions, mails

BASE = {k: True for k in ("identity", "reason", "card", "attesters", "card_or_order")}


@pytest.fixture(autouse=True)
def _frozen(set_now):
    set_now(date(2026, 3, 2))


@pytest.mark.both_databases
def test_approve_sends_the_routines_activation_mail(app, as_user, session):
    issuance = apply(as_user)
    checks = approval.approval_checks(issuance)
    assert [c["key"] for c in checks] == list(BASE)
    assert checks[0]["register_says"] == "Anna Åkesson, SE2321000131-E000000000001"
    assert checks[4]["register_says"] == "active"
    approved = approve(as_user, issuance.id, reference="KOBE-4711")
    assert approved.status == "approved" and approved.kobe_reference == "KOBE-4711"
    assert approved.approved_by_user_id is not None and approved.approved_at is not None
    message = mails("card_activation", issuance.id)[0]
    serial = issuance.card.serial
    assert set(message.to_addrs.split(", ")) == {"person1@example.se", "person7@example.se",
                                                 "person8@example.se"}
    text = message.body_text
    assert f"Reservkortet {serial} är nu klart att aktiveras, detta görs på" in text
    assert app.config["MINA_SIDOR_URL"] in text
    for line in ("1. Stäng alla webbläsarfönster och webbapplikationer",
                 "2. Stoppa in reservkortet i kortläsaren",
                 "4. Logga in med ditt reservkortsnummer och följ guiden",
                 app.config["MAIL_SIGNATURE"]):
        assert line in text
    assert f'href="{app.config["MINA_SIDOR_URL"]}"' in message.body_html
    assert audit_actions(issuance.id)[-1] == "issuance.approve"


def test_approval_refusals(app, as_user, session):
    issuance = apply(as_user)
    with as_user("televaxeln"):
        for key in BASE:
            with pytest.raises(RuleViolation) as caught:
                approval.approve(issuance.id, "K-1", {**BASE, key: False})
            assert caught.value.rule == "checks_incomplete" and caught.value.field == "checks"
        with pytest.raises(RuleViolation) as caught:
            approval.approve(issuance.id, "K-1", {})
        assert caught.value.rule == "checks_incomplete"
        with pytest.raises(FieldError) as field_error:
            approval.approve(issuance.id, "  ", BASE)
        assert field_error.value.field == "kobe_reference"
        assert session.get(Issuance, issuance.id).status == "awaiting_approval"
        assert approval.approve(issuance.id, "K-1", BASE).status == "approved"
    # temporary assignment: the reserve-card order check is required too
    temporary = apply(as_user, recipient="Cecilia", reason="temporary_assignment")
    assert approval.approval_checks(temporary)[-1]["key"] == "reserve_order"
    with as_user("televaxeln"), pytest.raises(RuleViolation) as caught:
        approval.approve(temporary.id, "K-2", BASE)
    assert caught.value.rule == "checks_incomplete"
    assert approve(as_user, temporary.id).status == "approved"


def test_reject_tells_everyone_and_the_card_stays_out(app, as_user, session):
    issuance = apply(as_user)
    with as_user("televaxeln"):
        with pytest.raises(FieldError) as caught:
            approval.reject(issuance.id, "")
        assert caught.value.field == "reason"
        rejected = approval.reject(issuance.id, "Intygsgivaren finns inte i Kobe")
    assert rejected.status == "rejected" and rejected.rejected_at is not None
    assert session.get(ReserveCard, issuance.card_id).status == "issued"
    message = mails("issuance_rejected", issuance.id)[0]
    assert "Intygsgivaren finns inte i Kobe" in message.body_text
    assert "återlämnas" in message.body_text
    assert len(message.to_addrs.split(", ")) == 3
    with as_user("televaxeln"), pytest.raises(RuleViolation) as again:
        approval.approve(issuance.id, "K-1", ALL_CHECKS)
    assert again.value.rule == "transition_not_allowed"


def test_approval_queue_oldest_first_without_a_query_per_row(app, as_user, set_now, session):
    ids = []
    for day, (recipient, reason) in enumerate([("Anna", "forgotten"),
                                               ("Björn", "awaiting_new_card"),
                                               ("Cecilia", "temporary_assignment")], start=2):
        set_now(date(2026, 3, day))
        ids.append(apply(as_user, recipient=recipient, reason=reason).id)
    session.expunge_all()
    statements = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        rows = session.execute(queries.approval_queue()).unique().scalars().all()
        # What the queue's template shows of each row.
        names = [(r.card.serial, r.card.loa, person_label(r.recipient), r.recipient.name,
                  [a.person.name for a in r.attesters], [person_label(a.person)
                                                         for a in r.attesters])
                 for r in rows]
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    assert [r.id for r in rows] == ids
    assert names[2][3] == "Cecilia Ängström" and names[0][4] == ["Gustav Gran",
                                                                "Helena Håkansson"]
    # The rows and their attesters; nothing the queue does not show (extension, receipt).
    assert len(statements) == 2, statements
