"""After the application: receipt, blocking, extension, return, and the transition table."""

import uuid
from pathlib import Path

import filetype
from dateutil.relativedelta import relativedelta
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app import clock, labels
from app.errors import NotFound, RuleViolation, refuse
from app.extensions import db
from app.validation import FieldError, card_serial
from app.workflow._common import (
    actor_user_id,
    cfg,
    changes,
    load_issuance,
    mail,
    not_allowed,
    people_addresses,
    record,
    require_transition,
)
from app.workflow._tx import step
from models import ENDED, ISSUANCE_STATUSES, Extension, Issuance, ReserveCard

# Where an issuance can be (see DOMAIN.md, "Second reading: the card's whole life"); ENDED:
# the card came back or was reported lost.
# The card is out with the person: from the completed application (in person) or the dispatch
# (mail) until it is returned or reported lost, also when blocked, expired or rejected.
HOLDING = tuple(s for s in ISSUANCE_STATUSES if s not in (*ENDED, "prepared"))
# The validity is running.
RUNNING = ("approved", "extended", "active")
# In person: the receipt deadline holds whatever happened to the validity or the approval
# (a blocked issuance has had its consequence already).
RECEIPT_DEADLINE = ("awaiting_approval", "approved", "extended", "expired", "rejected")
NOT_ENDED = tuple(s for s in ISSUANCE_STATUSES if s not in ENDED)

# step -> the issuance statuses it may start from. Every step checks here first.
TRANSITIONS = {
    "approve": frozenset({"awaiting_approval"}),
    "reject": frozenset({"awaiting_approval"}),
    "register_receipt": frozenset({*RECEIPT_DEADLINE, "blocked"}),
    # a mail envelope still at Servicecenter has no certificate to block (and is not out)
    "block": frozenset(set(NOT_ENDED) - {"blocked", "prepared"}),
    "extend": frozenset({"approved", "active", "expired"}),
    "return_card": frozenset(NOT_ENDED),
    "report_lost": frozenset(NOT_ENDED),
    "expire": frozenset({"awaiting_approval", *RUNNING}),
    "dispatched": frozenset({"prepared"}),
    "receipt_returned": frozenset({"sent"}),
    "certificate_issued": frozenset({"receipt_received"}),
}

SCAN_TYPES = {"application/pdf": "pdf", "image/jpeg": "jpg", "image/png": "png"}


def can_transition(status, step_name) -> bool:
    return status in TRANSITIONS.get(step_name, ())


def find_open_issuance_by_serial(serial) -> Issuance:
    """The issuance a card is out on (the card is scanned at the counter)."""
    serial = card_serial(serial)
    issuance = db.session.execute(
        select(Issuance).join(ReserveCard, Issuance.card_id == ReserveCard.id)
        .where(ReserveCard.serial == serial, Issuance.status.not_in(ENDED))
    ).unique().scalar_one_or_none()
    if issuance is None:
        raise NotFound("issuance for card", serial)
    return issuance


# --- receipt ----------------------------------------------------------------------------------

def _sniff_scan(scan_bytes) -> str:
    if len(scan_bytes) > cfg("MAX_UPLOAD_BYTES"):
        raise FieldError("scan", _l("The file is too large (at most %(mb)s MB).")
                         % {"mb": round(cfg("MAX_UPLOAD_BYTES") / 1024 / 1024, 1)})
    kind = filetype.guess(scan_bytes)
    if kind is None or kind.mime not in SCAN_TYPES:
        raise FieldError("scan", _l("The scan must be a PDF, JPEG or PNG file."))
    return kind.mime


def _store_scan(issuance, scan_bytes, mime) -> str:
    folder = Path(cfg("UPLOAD_DIR")) / "receipts"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{issuance.id}-{uuid.uuid4().hex}.{SCAN_TYPES[mime]}"
    (folder / name).write_bytes(scan_bytes)
    return f"receipts/{name}"


def receipt_pending(issuance) -> bool:
    """A receipt is expected and not yet registered (the status alone does not say so)."""
    return issuance.receipt is not None and issuance.receipt.received_at is None


def is_attester_of(user, issuance) -> bool:
    from app.security import person_for_user

    person = person_for_user(user)
    return person is not None and any(a.person_id == person.id for a in issuance.attesters)


def has_printable_receipt(issuance) -> bool:
    """The receipt (kvittens) is a paper of the in-person issuance; a registered-mail issuance
    has its manual receipt in the letter of the mail flow instead."""
    return issuance.channel == "in_person"


def may_print_receipt(user, issuance) -> bool:
    """The receipt is for the issuance's own attesters, and for Servicecenter (and Admin)."""
    from app.security import user_roles

    return bool(user_roles(user) & {"Servicecenter", "Admin"}) or is_attester_of(user, issuance)


@step
def register_receipt(issuance_id, scan_bytes=None, scan_filename=None) -> Issuance:
    """Servicecenter has the signed receipt (optionally a scan of it)."""
    issuance = load_issuance(issuance_id, lock=True)
    require_transition(issuance, "register_receipt")
    if not receipt_pending(issuance):
        raise not_allowed("register_receipt", "receipt_received")
    receipt = issuance.receipt
    mime = _sniff_scan(scan_bytes) if scan_bytes else None
    values = {"received_at": clock.now(), "registered_by_user_id": actor_user_id()}
    before, after = changes(receipt, **values)
    if mime:
        path = _store_scan(issuance, scan_bytes, mime)
        receipt.scan_path, receipt.scan_mime = path, mime
        after.update(scan_path=path, scan_mime=mime, scan_filename=scan_filename)
    record("receipt.register", "issuance", issuance.id, before, after)
    return issuance


def scan_file(issuance) -> Path | None:
    """Where a stored scan lives (for the view that serves it to Servicecenter)."""
    receipt = issuance.receipt
    if receipt is None or not receipt.scan_path:
        return None
    return Path(cfg("UPLOAD_DIR")) / receipt.scan_path


# --- block ------------------------------------------------------------------------------------

def block_issuance(issuance, reason, by_user_id, system=False) -> dict:
    before, after = changes(issuance, status="blocked", block_reason=reason,
                            blocked_at=clock.now(), blocked_by_user_id=by_user_id)
    record("issuance.block", "issuance", issuance.id, before, after, system=system)
    return after


@step
def block(issuance_id, reason) -> Issuance:
    """The certificate is revoked; the card must still come back."""
    issuance = load_issuance(issuance_id, lock=True)
    require_transition(issuance, "block")
    text = str(reason or "").strip()
    if not text:
        raise FieldError("reason", _l("Give the reason for blocking."))
    block_issuance(issuance, text, actor_user_id())
    mail("issuance_blocked", people_addresses(issuance, attesters=False), issuance)
    return issuance


# --- extension --------------------------------------------------------------------------------

def extension_last_day(issuance):
    issued_on = clock.to_local(issuance.issued_at).date()
    return issued_on + relativedelta(months=cfg("EXTENSION_WINDOW_MONTHS"))


def _was_approved(issuance) -> bool:
    """Approved by Televäxeln (in person) or its certificate issued (mail)."""
    return bool(issuance.approved_at if issuance.channel == "in_person"
                else issuance.certificate_issued_at)


def extension_period(issuance, today=None) -> tuple:
    """(start, end) of the extension asked for today: it starts at the later of the old end
    date and today, lasts the original length, and never runs past the card's own expiry."""
    today = today or clock.today()
    start = max(issuance.valid_until, today)
    end = min(start + relativedelta(days=issuance.original_days), issuance.card.expires_on)
    return start, end


def check_extension(issuance, same_reason=True):
    if issuance.extension is not None:
        raise refuse("extension_already_used")
    if not can_transition(issuance.status, "extend") or not _was_approved(issuance):
        raise refuse("extension_not_allowed")
    if same_reason is not True:
        raise FieldError("same_reason", _l(
            "An extension is only for the same reason or assignment as the issuance."))
    last_day = extension_last_day(issuance)
    if clock.today() > last_day:
        raise refuse("extension_window_passed", months=cfg("EXTENSION_WINDOW_MONTHS"),
                     last_day=last_day.isoformat())
    start, end = extension_period(issuance)
    if end <= start:
        raise refuse("validity_past_card_expiry", field="valid_until",
                     expires_on=issuance.card.expires_on.isoformat())
    return end


@step
def extend(issuance_id, same_reason=True) -> Issuance:
    """Once, by the original length, for the same reason, within the window after issue; also
    an expired card that has not come back (see extension_period)."""
    issuance = load_issuance(issuance_id, lock=True)
    new_end = check_extension(issuance, same_reason)
    db.session.add(Extension(
        issuance_id=issuance.id, requested_at=clock.now(),
        previous_valid_until=issuance.valid_until, new_valid_until=new_end,
        reason=issuance.reason, by_user_id=actor_user_id(),
    ))
    status = "extended" if issuance.channel == "in_person" else "active"
    before, after = changes(issuance, status=status, valid_until=new_end,
                            expiry_reminder_7_at=None, expiry_reminder_3_at=None)
    record("issuance.extend", "issuance", issuance.id, before, after)
    mail("issuance_extended", people_addresses(issuance, attesters=False), issuance)
    db.session.flush()
    db.session.refresh(issuance, ["extension"])
    return issuance


# --- lost -------------------------------------------------------------------------------------

@step
def report_lost(issuance_id, note) -> Issuance:
    """Servicecenter or a card handler reports the card lost: the card is lost, its
    certificate is to be blocked (who and when), the issuance ends, a deviation is filed, and
    the person may be given another card at once."""
    from app.workflow import deviations

    issuance = load_issuance(issuance_id, lock=True)
    require_transition(issuance, "report_lost")
    text = str(note or "").strip()
    if not text:
        raise FieldError("note", _l("Describe how the card was lost."))
    now, by = clock.now(), actor_user_id()
    before, after = changes(issuance, status="lost", lost_at=now, lost_by_user_id=by,
                            lost_note=text, certificate_block_requested_at=now,
                            certificate_block_requested_by_user_id=by)
    record("issuance.lost", "issuance", issuance.id, before, after)
    card = issuance.card
    card_before, card_after = changes(card, status="lost")
    record("card.lost", "card", card.id, card_before, {**card_after, "note": text})
    db.session.flush()
    deviations.file_for_issuance("card_lost", text, issuance.id)
    return issuance


# --- return -----------------------------------------------------------------------------------

@step
def return_card(issuance_id, then=None) -> Issuance:
    """The card is back at Servicecenter; then restock it (still bound) or destroy it."""
    from app.workflow import stock

    if then not in (None, "", "restock", "destroy"):
        raise FieldError("then", _l("Choose restock or destroy."))
    issuance = load_issuance(issuance_id, lock=True)
    require_transition(issuance, "return_card")
    before, after = changes(issuance, status="returned", returned_at=clock.now())
    record("issuance.return", "issuance", issuance.id, before, after)
    card = issuance.card
    card_before, card_after = changes(card, status="returned")
    record("card.return", "card", card.id, card_before, card_after)
    db.session.flush()
    if then == "restock":
        stock.restock(card.serial)
    elif then == "destroy":
        stock.destroy(card.serial)
    return issuance


# --- the return desk ---------------------------------------------------------------------------

@step
def return_by_serial(serial) -> Issuance:
    """A card put in the reader at the return desk: the issuance it is out on is returned. An
    unknown serial and a card that is not out are refused, each with its own rule."""
    from app.workflow import stock

    try:
        card = stock.find_card(serial)
    except NotFound:
        raise refuse("card_unknown", field="serial", serial=card_serial(serial)) from None
    try:
        issuance = find_open_issuance_by_serial(card.serial)
    except NotFound:
        raise refuse("card_not_out", field="serial", serial=card.serial,
                     status=labels.label("card_status", card.status)) from None
    return return_card(issuance.id)


def return_scanned(serial, then):
    """The return desk's scan mode: return the card, then restock or destroy it as chosen once
    for the batch. The return stands on its own (the card is back whatever follows): a card
    that cannot be restocked (past its own expiry) stays returned, awaiting a decision, and the
    refusal is given back instead of raised. Returns (issuance, refusal or None)."""
    from app.workflow import stock

    if then not in ("restock", "destroy"):
        raise FieldError("then", _l("Choose restock or destroy."))
    issuance = return_by_serial(serial)
    follow_up = stock.restock if then == "restock" else stock.destroy
    try:
        follow_up(issuance.card.serial)
    except RuleViolation as exc:
        return issuance, exc
    return issuance, None


# --- what the issuance page offers ---------------------------------------------------------------

def extension_possible(issuance) -> bool:
    """The extension's conditions (check_extension) without raising: for offering the step."""
    if issuance.extension is not None or not can_transition(issuance.status, "extend"):
        return False
    if not _was_approved(issuance) or clock.today() > extension_last_day(issuance):
        return False
    start, end = extension_period(issuance)
    return end > start


def possible_steps(issuance) -> dict:
    """step -> whether the issuance's state allows it now (what the role may do is the access
    policy's question, asked apart)."""
    return {
        "receipt": can_transition(issuance.status, "register_receipt")
        and receipt_pending(issuance),
        "block": can_transition(issuance.status, "block"),
        "extend": extension_possible(issuance),
        "return": can_transition(issuance.status, "return_card"),
        "lost": can_transition(issuance.status, "report_lost"),
    }
