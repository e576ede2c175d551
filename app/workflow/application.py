"""The in-person application (reservkortsapplikationen): recipient, card, attesters, validity."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import event, or_, select

from app import clock, labels, security
from app.errors import refuse
from app.extensions import db
from app.validation import FieldError, card_serial
from app.validation import hsa_id as valid_hsa_id
from app.validation import personal_number as valid_personal_number
from app.workflow._common import (
    REASON_SV,
    actor_user_id,
    cfg,
    current_user,
    mail_many,
    people_addresses,
    record,
    record_many,
    user_id_for_person,
)
from app.workflow._tx import conflict_params, refusals_logged, step
from models import (
    CLOSED_FOR_PERSON,
    REASONS,
    Issuance,
    IssuanceAttester,
    Person,
    Receipt,
    ReserveCard,
)

REASON_LABELS = labels.REASON
# The reasons in the routine's own Swedish words, for paper documents and e-mails (always
# Swedish, whatever the reader's language).
REASON_LABELS_SV = REASON_SV


# --- the card ---------------------------------------------------------------------------------

@refusals_logged
def check_card(serial, recipient=None, lock=False) -> ReserveCard:
    """The card must be known, sealed in stock, not past its expiry, LOA2 and, with the binding
    rule, never issued to anyone but this recipient."""
    serial = card_serial(serial, field="card_serial")
    query = select(ReserveCard).where(ReserveCard.serial == serial)
    if lock:
        query = query.with_for_update(of=ReserveCard)
    card = db.session.execute(
        query.execution_options(populate_existing=True)
    ).unique().scalar_one_or_none()
    if card is None:
        raise refuse("card_unknown", field="card_serial", serial=serial)
    if card.status != "in_stock":
        raise refuse("card_not_in_stock", field="card_serial", serial=serial)
    if card.expires_on < clock.today():
        raise refuse("card_expired", field="card_serial", serial=serial,
                     expires_on=card.expires_on.isoformat())
    if card.loa != "LOA2":
        raise refuse("card_not_loa2", field="card_serial", serial=serial)
    if (recipient is not None and cfg("CARD_BOUND_TO_FIRST_HOLDER")
            and card.bound_person_id not in (None, recipient.id)):
        raise refuse("card_bound_to_other_person", field="card_serial", serial=serial)
    return card


# --- the recipient ----------------------------------------------------------------------------

@refusals_logged
def find_recipient(query) -> Person:
    """The person with this HSA-id or Swedish personal identity number."""
    text = str(query or "").strip()
    conditions = []
    try:
        conditions.append(Person.hsa_id == valid_hsa_id(text, field="recipient_hsa_id"))
    except FieldError:
        pass
    try:
        number = valid_personal_number(text, field="recipient")
        if number:
            conditions.append(Person.personal_number == number)
    except FieldError:
        pass
    person = None
    if conditions:
        # With the person, whether they have an open issuance (the rule checked next), in the
        # same statement.
        open_id = (select(Issuance.id).where(Issuance.recipient_id == Person.id,
                                             Issuance.status.not_in(CLOSED_FOR_PERSON))
                   .limit(1).scalar_subquery())
        row = db.session.execute(
            select(Person, open_id).where(or_(*conditions)).limit(1)
        ).unique().one_or_none()
        if row is not None:
            person = row[0]
            db.session.info.setdefault(_OPEN_HINT, {})[person.id] = row[1]
    if person is None:
        raise refuse("recipient_unknown", field="recipient_hsa_id", hsa_id=text)
    return person


_OPEN_HINT = "rk_open_issuance_hint"


@event.listens_for(db.session, "after_flush")
@event.listens_for(db.session, "after_commit")
@event.listens_for(db.session, "after_rollback")
def _forget_open_hint(session, *_args):
    """What find_recipient saw holds until the session writes or ends its transaction."""
    session.info.pop(_OPEN_HINT, None)


def _open_issuance(person) -> Issuance | None:
    hint = db.session.info.get(_OPEN_HINT, {})
    if person.id in hint and hint[person.id] is None:
        return None  # find_recipient saw none, and nothing was written since
    return db.session.execute(
        select(Issuance).where(Issuance.recipient_id == person.id,
                               Issuance.status.not_in(CLOSED_FOR_PERSON)).limit(1)
    ).unique().scalar_one_or_none()


def recipient_facts(person) -> dict:
    """What the rules need to know about a recipient, from the people and Kobe registers."""
    kobe = person.kobe
    open_issuance = _open_issuance(person)
    return {
        "person_id": person.id,
        "name": person.name,
        "hsa_id": person.hsa_id,
        "protected_identity": bool(person.protected_identity),
        "has_personal_number": bool(person.personal_number),
        "ordinary_card": kobe.ordinary_card if kobe else "none",
        "reserve_card_order": bool(kobe and kobe.reserve_card_order),
        "open_issuance_id": open_issuance.id if open_issuance else None,
        "open_card_serial": open_issuance.card.serial if open_issuance else None,
        "attesters_required": attesters_required(person),
    }


@refusals_logged
def check_recipient(person, reason=None) -> dict:
    """Every rule about the recipient; returns the facts when all hold."""
    facts = recipient_facts(person)
    field = "recipient_hsa_id"
    if facts["protected_identity"]:
        raise refuse("recipient_protected_identity", field=field)
    if not facts["has_personal_number"]:
        raise refuse("recipient_no_personal_number", field=field)
    if facts["open_issuance_id"]:
        raise refuse("recipient_has_open_issuance", field=field, name=person.name)
    has_card = facts["ordinary_card"] in ("active", "ordered")
    if not has_card and not facts["reserve_card_order"]:
        raise refuse("recipient_no_card_or_order", field=field, name=person.name)
    if reason is not None:
        check_reason(reason)
    if reason == "awaiting_new_card" and facts["ordinary_card"] != "ordered":
        raise refuse("new_card_not_ordered", field="reason")
    if reason == "temporary_assignment" and not facts["reserve_card_order"]:
        raise refuse("reserve_order_missing", field="reason")
    return facts


# --- reason and validity ----------------------------------------------------------------------

def check_reason(reason) -> str:
    if reason not in REASONS:
        raise FieldError("reason", _l("Choose one of the reasons."))
    return reason


def max_valid_until(reason, start=None, card=None) -> date:
    """The latest end date: the reason's maximum counted from the issue date, and never past
    the card's own expiry date."""
    start = start or clock.today()
    latest = start + timedelta(days=cfg("REASON_MAX_DAYS")[check_reason(reason)])
    if card is not None and card.expires_on < latest:
        return card.expires_on
    return latest


@refusals_logged
def check_validity(reason, valid_until, start=None, card=None) -> date:
    """The end date: the latest allowed when none is given; never later than the reason's
    maximum or the card's own expiry, never before tomorrow."""
    start = start or clock.today()
    reason_latest = max_valid_until(reason, start)
    latest = max_valid_until(reason, start, card)
    if valid_until in (None, ""):
        valid_until = latest
    elif not isinstance(valid_until, date):
        try:
            valid_until = date.fromisoformat(str(valid_until))
        except ValueError as exc:
            raise FieldError("valid_until", _l("Give a date as YYYY-MM-DD.")) from exc
    if valid_until > reason_latest:
        raise refuse("validity_too_long", field="valid_until",
                     max_date=reason_latest.isoformat(), max_days=cfg("REASON_MAX_DAYS")[reason])
    if valid_until > latest:
        raise refuse("validity_past_card_expiry", field="valid_until",
                     expires_on=card.expires_on.isoformat())
    if valid_until <= start:
        if card is not None and card.expires_on <= start:
            raise refuse("validity_past_card_expiry", field="valid_until",
                         expires_on=card.expires_on.isoformat())
        raise FieldError("valid_until", _l("The end date must be after the issue date."))
    return valid_until


def check_assignment(reason, assignment) -> str | None:
    """A temporary assignment is described (the Kobe check and the extension refer to it)."""
    text = str(assignment or "").strip()
    if reason == "temporary_assignment" and not text:
        raise FieldError("assignment", _l("Describe the temporary assignment."))
    return text or None


# --- attesters --------------------------------------------------------------------------------

def attesters_required(recipient) -> int:
    unit = recipient.unit
    if unit is not None and unit.org_type is not None:
        return unit.org_type.attesters_required
    return cfg("DEFAULT_ATTESTERS_REQUIRED")


def authenticate_attester(username, password) -> Person:
    """An attester proves who they are with their own credentials; a typed name is not enough."""
    user = security.authenticate(username, password)
    person = security.person_for_user(user) if user else None
    if person is None:
        raise refuse("attesters_too_few", field="attesters",
                     required=cfg("DEFAULT_ATTESTERS_REQUIRED"), given=1)
    return person


def _all_attesters(attester_people) -> list[Person]:
    """The caller is attester 1; `attester_people` are the others who authenticated."""
    user = current_user()
    caller = security.person_for_user(user) if user is not None else None
    others = list(attester_people or [])
    if caller is None:
        return others
    if len(others) >= 2 and others[0].id == caller.id:
        others = others[1:]  # the caller passed in as attester 1 as well
    return [caller, *others]


def check_recipient_not_attester(recipient, attester_people=()) -> None:
    """The recipient cannot attest their own card; the logged-in user is attester 1, so this
    holds as soon as the recipient is chosen."""
    for person in _all_attesters(attester_people):
        if person is not None and person.id == recipient.id:
            raise refuse("attester_is_recipient", field="recipient_hsa_id")


@dataclass(frozen=True)
class Attestation:
    """An attester who authenticated in this application session, and when."""

    person: Person
    authenticated_at: datetime


@refusals_logged
def attest(username, password) -> Attestation:
    """An attester authenticates in the application session with their own credentials."""
    return Attestation(authenticate_attester(username, password), clock.now())


def _presented_card(user) -> bool:
    """With client-certificate login the SITHS card itself is presented with this request."""
    from flask import has_request_context, request

    return bool(cfg("CLIENT_CERT_LOGIN") and has_request_context()
                and request.environ.get("REMOTE_USER")
                and request.environ["REMOTE_USER"] == user.username)


@refusals_logged
def attest_caller(password=None) -> Attestation:
    """Attester 1, the logged-in user, authenticates again in the application session: their
    password once more, or their card where client-certificate login is on. Having been
    logged in (for up to a whole session) is not enough."""
    user = current_user()
    if user is None:
        raise refuse("attesters_too_few", field="password",
                     required=cfg("DEFAULT_ATTESTERS_REQUIRED"), given=0)
    if _presented_card(user):
        person = security.person_for_user(user)
        if person is None:
            raise refuse("attesters_too_few", field="password",
                         required=cfg("DEFAULT_ATTESTERS_REQUIRED"), given=0)
        return Attestation(person, clock.now())
    return attest(user.username, password)


@refusals_logged
def check_attesters(recipient, attester_people) -> list[Person]:
    required = attesters_required(recipient)
    people = [p for p in attester_people if p is not None]
    if len(people) < required:
        raise refuse("attesters_too_few", field="attesters", required=required, given=len(people))
    if len({p.id for p in people}) != len(people):
        raise refuse("attesters_not_distinct", field="attesters")
    excluded = set(cfg("EXCLUDED_ATTESTER_ROLES"))
    for person in people:
        if person.id == recipient.id:
            raise refuse("attester_is_recipient", field="attesters")
        if person.kobe is None or person.kobe.ordinary_card != "active":
            raise refuse("attester_without_valid_card", field="attesters", name=person.name)
        if person.card_office_role and person.card_office_role in excluded:
            raise refuse("attester_not_eligible", field="attesters", name=person.name,
                         role=person.card_office_role)
    return people


def _fresh_attestations(recipient, attestations) -> list[Attestation]:
    """Every attester authenticated in this session, recently, the caller among them as
    attester 1; a person named without authenticating does not count."""
    oldest = clock.now() - timedelta(minutes=cfg("ATTESTATION_MAX_AGE_MINUTES"))
    fresh = [a for a in (attestations or [])
             if isinstance(a, Attestation) and a.authenticated_at >= oldest]
    user = current_user()
    caller = security.person_for_user(user) if user is not None else None
    if caller is not None:
        mine = [a for a in fresh if a.person.id == caller.id]
        if not mine:
            raise refuse("attesters_too_few", field="attesters",
                         required=attesters_required(recipient), given=len(fresh))
        fresh = [mine[0], *[a for a in fresh if a is not mine[0]]]
    return fresh


# --- the application --------------------------------------------------------------------------

def _confirmations(recipient_present, envelope_unopened):
    if recipient_present is not True:
        raise FieldError("recipient_present", _l(
            "The recipient must be present; activation without the recipient is not allowed."))
    if envelope_unopened is not True:
        raise FieldError("envelope_unopened", _l(
            "The card must come from an unopened envelope."))


@step
def apply_in_person(card_serial, recipient_hsa_id, reason, attesters, recipient_present,
                    envelope_unopened, valid_until=None, assignment=None) -> Issuance:
    """Complete the application: the issuance waits for Televäxeln, the receipt is due, the card
    is out. `attesters` are the Attestations of this session (`attest_caller`, `attest`), the
    logged-in caller's among them (attester 1)."""
    _confirmations(recipient_present, envelope_unopened)
    check_reason(reason)
    assignment = check_assignment(reason, assignment)
    recipient = find_recipient(recipient_hsa_id)
    check_recipient(recipient, reason)
    attestations = _fresh_attestations(recipient, attesters)
    check_attesters(recipient, [a.person for a in attestations])
    card = check_card(card_serial, recipient, lock=True)
    end = check_validity(reason, valid_until, card=card)
    return _create(card, recipient, reason, attestations, end, assignment)


def _create(card, recipient, reason, attestations, end, assignment) -> Issuance:
    now = clock.now()
    today = clock.today()
    receipt_due = today + timedelta(days=cfg("RECEIPT_DUE_DAYS"))
    issuance = Issuance(
        channel="in_person", status="awaiting_approval", card_id=card.id,
        recipient_id=recipient.id, reason=reason, assignment=(assignment or None),
        created_at=now, created_by_user_id=actor_user_id(), issued_at=now, valid_until=end,
        original_days=(end - today).days, receipt_due=receipt_due,
    )
    issuance.card = card
    issuance.recipient = recipient
    for position, attestation in enumerate(attestations, start=1):
        person = attestation.person
        issuance.attesters.append(IssuanceAttester(
            person=person, person_id=person.id, user_id=user_id_for_person(person.id),
            position=position, authenticated_at=attestation.authenticated_at,
        ))
    issuance.receipt = Receipt(kind="application", due_on=receipt_due)
    db.session.add(issuance)
    conflict_params(serial=card.serial, name=recipient.name)
    db.session.flush()
    # Both audit rows and both e-mails in one append each.
    record_many([
        card_issued(card, recipient),
        ("issuance.apply", "issuance", issuance.id, None, {
            "status": issuance.status, "channel": "in_person", "card": card.serial,
            "recipient": recipient.hsa_id, "reason": reason, "valid_until": end,
            "receipt_due": receipt_due,
            "attesters": [a.person.hsa_id for a in attestations]}),
    ])
    mail_many([
        ("application_completed", people_addresses(issuance), issuance, None, {}),
        ("approval_requested", cfg("TELEVAXELN_MAILBOX"), issuance, None, {}),
    ])
    return issuance


def card_issued(card, recipient) -> tuple:
    """Mark the card issued (bound to the recipient); its audit entry, to be recorded."""
    before = {"status": card.status, "bound_person_id": card.bound_person_id}
    card.status = "issued"
    if card.bound_person_id is None:
        card.bound_person_id = recipient.id
    return ("card.issue", "card", card.id, before,
            {"status": card.status, "bound_person_id": card.bound_person_id})


def mark_card_issued(card, recipient) -> None:
    record(*card_issued(card, recipient))
