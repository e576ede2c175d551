"""Televäxeln's check in Kobe: confirm every check and approve, or reject with a reason."""

from flask_babel import lazy_gettext as _l

from app import access, clock, labels
from app.errors import refuse
from app.validation import FieldError
from app.workflow._common import (
    actor_user_id,
    changes,
    load_issuance,
    mail,
    not_allowed,
    people_addresses,
    record,
    require_transition,
)
from app.workflow._tx import step
from models import Issuance

CHECK_LABELS = {
    "identity": _l("The recipient's identity"),
    "reason": _l("The reason"),
    "card": _l("The card number"),
    "attesters": _l("The attesters"),
    "card_or_order": _l("An ordinary card exists or is ordered"),
    "reserve_order": _l("A reserve-card order exists"),
}


def required_checks(issuance) -> list[str]:
    keys = ["identity", "reason", "card", "attesters", "card_or_order"]
    if issuance.reason == "temporary_assignment":
        keys.append("reserve_order")
    return keys


def _register_says(issuance) -> dict:
    """What the system already knows for each check (from its own Kobe register)."""
    person = issuance.recipient
    kobe = person.kobe
    ordinary = kobe.ordinary_card if kobe else "none"
    return {
        "identity": f"{access.display_name(person)}, {person.hsa_id}",
        "reason": labels.reason(issuance.reason),
        "card": f"{issuance.card.serial} ({issuance.card.loa})",
        "attesters": ", ".join(access.display_name(a.person) for a in issuance.attesters),
        "card_or_order": ordinary,
        "reserve_order": bool(kobe and kobe.reserve_card_order),
    }


def approval_checks(issuance) -> list[dict]:
    says = _register_says(issuance)
    required = set(required_checks(issuance))
    return [
        {"key": key, "label": CHECK_LABELS[key], "register_says": says[key],
         "required": key in required}
        for key in CHECK_LABELS
        if key in required
    ]


@step
def approve(issuance_id, kobe_reference, checks) -> Issuance:
    """Every check confirmed and the Kobe reference recorded: the card may be activated."""
    issuance = load_issuance(issuance_id, lock=True)
    require_transition(issuance, "approve")
    if issuance.valid_until < clock.today():
        # The validity ended before approval (the sweep expires it): nothing to activate.
        raise not_allowed("approve", "expired")
    checks = dict(checks or {})
    missing = [k for k in required_checks(issuance) if checks.get(k) is not True]
    if missing:
        raise refuse("checks_incomplete", field="checks",
                     missing=", ".join(str(CHECK_LABELS[k]) for k in missing))
    reference = str(kobe_reference or "").strip()
    if not reference:
        raise FieldError("kobe_reference", _l("Give the reference of the approval in Kobe."))
    before, after = changes(
        issuance, status="approved", kobe_reference=reference,
        checks_confirmed={k: True for k in required_checks(issuance)},
        approved_at=clock.now(), approved_by_user_id=actor_user_id(),
    )
    record("issuance.approve", "issuance", issuance.id, before, after)
    mail("card_activation", people_addresses(issuance), issuance)
    return issuance


@step
def reject(issuance_id, reason) -> Issuance:
    """A check failed: the recipient and attesters are told, and the card must come back."""
    issuance = load_issuance(issuance_id, lock=True)
    require_transition(issuance, "reject")
    text = str(reason or "").strip()
    if not text:
        raise FieldError("reason", _l("Give the reason for the rejection."))
    before, after = changes(issuance, status="rejected", rejection_reason=text,
                            rejected_at=clock.now())
    record("issuance.reject", "issuance", issuance.id, before, after)
    mail("issuance_rejected", people_addresses(issuance), issuance)
    return issuance
