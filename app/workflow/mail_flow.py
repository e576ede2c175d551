"""The exception: a reserve card sent by registered mail, handled only by card handlers."""

from datetime import timedelta

from flask_babel import lazy_gettext as _l

from app import clock
from app.errors import refuse
from app.extensions import db
from app.security import user_roles
from app.validation import FieldError
from app.workflow._common import (
    actor_user_id,
    cfg,
    changes,
    current_user,
    load_issuance,
    mail,
    people_addresses,
    record,
    require_transition,
)
from app.workflow._tx import conflict_params, step
from app.workflow.application import (
    check_assignment,
    check_card,
    check_reason,
    check_recipient,
    check_validity,
    find_recipient,
    mark_card_issued,
    recipient_facts,
)
from models import Issuance, Receipt

ID_METHOD = "Identifierad med rekommenderad post"
CARD_HANDLER_ROLES = {"Korthandläggare", "Admin"}


def _require_card_handler():
    user = current_user()
    if user is None or not (user_roles(user) & CARD_HANDLER_ROLES):
        raise refuse("card_handler_only")


def _required_text(value, field, message) -> str:
    text = str(value or "").strip()
    if not text:
        raise FieldError(field, message)
    return text


@step
def prepare(card_serial, recipient_hsa_id, reason, address, justification,
            valid_until=None, assignment=None) -> Issuance:
    """Record why the exception is needed, tie the card to the recipient and keep a copy of the
    receipt data for follow-up. The envelope is then sent by registered mail."""
    _require_card_handler()
    justification = _required_text(justification, "justification", _l(
        "Record why the card must go by registered mail."))
    address = _required_text(address, "address", _l("Give the address to send the card to."))
    check_reason(reason)
    assignment = check_assignment(reason, assignment)
    recipient = find_recipient(recipient_hsa_id)
    check_recipient(recipient, reason)
    card = check_card(card_serial, recipient, lock=True)
    # The validity starts when the certificate is issued; here only its length is chosen.
    end = check_validity(reason, valid_until, card=card)
    now, today = clock.now(), clock.today()
    days = (end - today).days
    issuance = Issuance(
        channel="registered_mail", status="prepared", card_id=card.id, recipient_id=recipient.id,
        reason=reason, assignment=assignment, created_at=now,
        created_by_user_id=actor_user_id(), issued_at=None, valid_until=None,
        original_days=days, address=address, justification=justification,
    )
    issuance.card, issuance.recipient = card, recipient
    issuance.receipt = Receipt(kind="manual", data_copy={
        "card_serial": card.serial, "recipient_name": recipient.name,
        "recipient_hsa_id": recipient.hsa_id, "reason": reason, "prepared_on": today.isoformat(),
        "validity_days": days, "address": address,
    })
    db.session.add(issuance)
    conflict_params(serial=card.serial, name=recipient.name)
    db.session.flush()
    mark_card_issued(card, recipient)
    record("issuance.prepare", "issuance", issuance.id, None, {
        "status": "prepared", "channel": "registered_mail", "card": card.serial,
        "recipient": recipient.hsa_id, "reason": reason, "validity_days": days,
        "address": address, "justification": justification,
    })
    return issuance


@step
def dispatched(issuance_id, registered_mail_number) -> Issuance:
    """The envelope went by registered mail; the signed receipt is now awaited."""
    _require_card_handler()
    issuance = load_issuance(issuance_id, lock=True)
    require_transition(issuance, "dispatched")
    # The card leaves Servicecenter now: the person must not hold another one.
    facts = recipient_facts(issuance.recipient)
    if facts["open_issuance_id"] not in (None, issuance.id):
        raise refuse("recipient_has_open_issuance", field="recipient_hsa_id",
                     name=issuance.recipient.name)
    number = _required_text(registered_mail_number, "registered_mail_number", _l(
        "Give the registered-mail number."))
    due = clock.today() + timedelta(days=cfg("MAIL_RECEIPT_DUE_DAYS"))
    before, after = changes(issuance, status="sent", registered_mail_number=number,
                            dispatched_at=clock.now(), receipt_due=due)
    issuance.receipt.due_on = due
    record("issuance.dispatch", "issuance", issuance.id, before, after)
    return issuance


@step
def receipt_returned(issuance_id) -> Issuance:
    _require_card_handler()
    issuance = load_issuance(issuance_id, lock=True)
    require_transition(issuance, "receipt_returned")
    receipt_before, receipt_after = changes(
        issuance.receipt, received_at=clock.now(), registered_by_user_id=actor_user_id())
    before, after = changes(issuance, status="receipt_received")
    record("issuance.mail_receipt", "issuance", issuance.id, {**before, **receipt_before},
           {**after, **receipt_after})
    return issuance


@step
def certificate_issued(issuance_id) -> Issuance:
    """The handler created the certificate in the SITHS portal; the receipt is archived."""
    _require_card_handler()
    issuance = load_issuance(issuance_id, lock=True)
    require_transition(issuance, "certificate_issued")
    now, today = clock.now(), clock.today()
    # The card can be used from now: its validity starts here, capped at the card's expiry.
    end = min(today + timedelta(days=issuance.original_days), issuance.card.expires_on)
    if end <= today:
        raise refuse("validity_past_card_expiry", field="valid_until",
                     expires_on=issuance.card.expires_on.isoformat())
    before, after = changes(issuance, status="active", id_method=ID_METHOD,
                            certificate_issued_at=now, issued_at=now, valid_until=end,
                            certificate_issued_by_user_id=actor_user_id())
    issuance.receipt.archived_at = now
    record("issuance.certificate_issued", "issuance", issuance.id, before,
           {**after, "receipt_archived_at": now})
    mail("certificate_issued", people_addresses(issuance, attesters=False), issuance)
    return issuance
