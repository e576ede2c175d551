"""Each step is one transaction: audit and e-mail rows go with the change or not at all, and a
unique-index conflict becomes the refusal the checks would have given."""

from datetime import date

import pytest

from app import outbox
from app.errors import RuleViolation
from app.workflow import application, approval
from models import AuditEvent, Issuance, OutboxMessage, ReserveCard
from tests.workflow_support import ALL_CHECKS, apply, count, free_cards


@pytest.fixture(autouse=True)
def _frozen(set_now):
    set_now(date(2026, 3, 2))


def _failing_mail(template_to_fail):
    real = outbox.render_message

    def render_message(template, *args, **kwargs):
        if template == template_to_fail:
            raise RuntimeError("mail template broke")
        return real(template, *args, **kwargs)

    return render_message


@pytest.mark.both_databases
def test_a_failure_leaves_nothing_half_written(app, as_user, session, monkeypatch):
    serial = free_cards(1)[0]
    audits, messages = count(AuditEvent), count(OutboxMessage)
    monkeypatch.setattr(outbox, "render_message", _failing_mail("approval_requested"))
    with pytest.raises(RuntimeError):
        apply(as_user, serial=serial)
    assert count(Issuance) == 0
    assert (count(AuditEvent), count(OutboxMessage)) == (audits, messages)
    card = session.query(ReserveCard).filter_by(serial=serial).one()
    assert (card.status, card.bound_person_id) == ("in_stock", None)
    monkeypatch.undo()
    issuance = apply(as_user, serial=serial)
    assert count(AuditEvent) == audits + 2 and count(OutboxMessage) == messages + 2
    monkeypatch.setattr(outbox, "render_message", _failing_mail("card_activation"))
    with as_user("televaxeln"), pytest.raises(RuntimeError):
        approval.approve(issuance.id, "K-1", ALL_CHECKS)
    session.expire_all()
    assert session.get(Issuance, issuance.id).status == "awaiting_approval"
    assert count(AuditEvent) == audits + 2 and count(OutboxMessage) == messages + 2


@pytest.mark.both_databases
def test_index_conflicts_become_rule_violations(app, as_user, session, monkeypatch):
    first = apply(as_user, recipient="Anna")
    # As if a second application had read the state before the first committed:
    monkeypatch.setattr(application, "_open_issuance", lambda person: None)
    with pytest.raises(RuleViolation) as caught:
        apply(as_user, recipient="Anna")
    assert caught.value.rule == "recipient_has_open_issuance"
    assert "Anna Åkesson" in caught.value.message
    session.query(ReserveCard).filter_by(id=first.card_id).update({"status": "in_stock"})
    session.commit()
    with pytest.raises(RuleViolation) as caught:
        apply(as_user, recipient="Björn", reason="awaiting_new_card", serial=first.card.serial)
    assert caught.value.rule in ("card_not_in_stock", "card_bound_to_other_person")
    app.config["CARD_BOUND_TO_FIRST_HOLDER"] = False
    with pytest.raises(RuleViolation) as caught:
        apply(as_user, recipient="Björn", reason="awaiting_new_card", serial=first.card.serial)
    assert caught.value.rule == "card_not_in_stock"
    assert first.card.serial in caught.value.message
    assert count(Issuance) == 1
