"""The registered-mail flow, handled only by card handlers."""

from datetime import date, timedelta

import pytest

from app.errors import RuleViolation
from app.validation import FieldError
from app.workflow import mail_flow
from models import Issuance, ReserveCard
from tests.workflow_support import audit_actions, free_cards, mails, person

TODAY = date(2026, 3, 2)
ADDRESS = "Björn Östlund, Storgatan 1, 432 44 Varberg"


@pytest.fixture(autouse=True)
def _frozen(set_now):
    set_now(TODAY)


def prepare(serial=None, recipient="Björn", reason="awaiting_new_card", **kwargs):
    values = {"address": ADDRESS, "justification": "Arbetar på distans, ingen administratör"}
    values.update(kwargs)
    return mail_flow.prepare(serial or free_cards(1)[0], person(recipient).hsa_id, reason,
                             **values)


def rule_of(call):
    with pytest.raises(RuleViolation) as caught:
        call()
    return caught.value.rule


@pytest.mark.both_databases
def test_mail_flow_to_active(app, as_user, session):
    with as_user("korthandlaggare"):
        issuance = prepare()
        assert issuance.status == "prepared" and issuance.channel == "registered_mail"
        copy = issuance.receipt.data_copy
        assert issuance.receipt.kind == "manual"
        assert copy["address"] == ADDRESS and copy["card_serial"] == issuance.card.serial
        assert copy["reason"] == "awaiting_new_card"
        assert session.get(ReserveCard, issuance.card_id).status == "issued"
        with pytest.raises(FieldError) as caught:
            mail_flow.dispatched(issuance.id, "")
        assert caught.value.field == "registered_mail_number"
        sent = mail_flow.dispatched(issuance.id, "RR123456785SE")
        assert sent.status == "sent" and sent.dispatched_at is not None
        assert sent.receipt.due_on == TODAY + timedelta(days=14)
        assert mail_flow.receipt_returned(issuance.id).receipt.received_at is not None
        active = mail_flow.certificate_issued(issuance.id)
    assert active.status == "active"
    assert active.id_method == "Identifierad med rekommenderad post"
    assert active.certificate_issued_by_user_id is not None
    assert active.receipt.archived_at is not None
    message = mails("certificate_issued", issuance.id)[0]
    assert message.to_addrs == "person2@example.se"
    assert app.config["MINA_SIDOR_URL"] in message.body_text
    assert audit_actions(issuance.id) == ["issuance.prepare", "issuance.dispatch",
                                          "issuance.mail_receipt",
                                          "issuance.certificate_issued"]


def test_mail_flow_refusals(app, as_user, session):
    for user in ("servicecenter", "intygsgivare1", "televaxeln"):
        with as_user(user):
            assert rule_of(prepare) == "card_handler_only"
    with as_user("korthandlaggare"):
        assert rule_of(lambda: prepare(free_cards(1, loa="LOA3")[0])) == "card_not_loa2"
        for field in ("justification", "address"):
            with pytest.raises(FieldError) as caught:
                prepare(**{field: "  "})
            assert caught.value.field == field
        assert rule_of(lambda: prepare(recipient="Eva", reason="forgotten")) == (
            "recipient_protected_identity")
        assert rule_of(lambda: prepare(recipient="David", reason="forgotten")) == (
            "recipient_no_card_or_order")
        assert rule_of(lambda: prepare(recipient="Anna")) == "new_card_not_ordered"
        assert rule_of(lambda: prepare(valid_until=TODAY + timedelta(days=31))) == (
            "validity_too_long")
        assert session.query(Issuance).count() == 0
        issuance = prepare(valid_until=TODAY + timedelta(days=30))
        assert rule_of(lambda: mail_flow.receipt_returned(issuance.id)) == (
            "transition_not_allowed")
        # still at Servicecenter, the first card is not out: a second envelope may be prepared,
        # but only one of them can leave
        second = prepare()
        mail_flow.dispatched(issuance.id, "RR123456785SE")
        assert rule_of(lambda: mail_flow.dispatched(second.id, "RR123456799SE")) == (
            "recipient_has_open_issuance")
