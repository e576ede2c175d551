"""How stored values read on the screens: Swedish local time, a dash for nothing, and the audit
history (action codes and changed fields) in words. `install(flask_app)` makes them Jinja
filters: `local_time`, `dash`, `action_label` and `changes`."""

from datetime import date, datetime

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app import clock
from app.workflow._common import STATUS_LABELS as ISSUANCE_STATUS_LABELS

DASH = "–"
TIME_FORMAT = "%Y-%m-%d %H:%M"

STATUS_LABELS = {
    **ISSUANCE_STATUS_LABELS,
    # cards
    "in_stock": _l("In stock"),
    "issued": _l("Issued"),
    "lost": _l("Lost"),
    "destroyed": _l("Destroyed"),
    # deviations
    "open": _l("Open"),
    "closed": _l("Closed"),
}
CHANNEL_LABELS = {"in_person": _l("In person"), "registered_mail": _l("Registered mail")}

# audit action -> what happened, in words
ACTION_LABELS = {
    "issuance.apply": _l("Application registered"),
    "issuance.prepare": _l("Prepared for registered mail"),
    "issuance.dispatch": _l("Sent by registered mail"),
    "issuance.mail_receipt": _l("Receipt returned by post"),
    "issuance.certificate_issued": _l("Certificate issued"),
    "issuance.approve": _l("Issuance approved"),
    "issuance.reject": _l("Issuance rejected"),
    "issuance.block": _l("Card blocked"),
    "issuance.extend": _l("Validity extended"),
    "issuance.return": _l("Card returned"),
    "issuance.receipt_reminder": _l("Receipt reminder sent"),
    "issuance.expiry_reminder": _l("Expiry reminder sent"),
    "issuance.expire": _l("Validity expired"),
    "issuance.return_request": _l("Return requested"),
    "issuance.lost": _l("Card reported lost"),
    "receipt.register": _l("Receipt registered"),
    "card.issue": _l("Card handed out"),
    "card.return": _l("Card returned"),
    "card.move": _l("Card moved"),
    "card.lost": _l("Card reported lost"),
    "card.restock": _l("Card restocked"),
    "card.destroy": _l("Card destroyed"),
    "card.register_batch": _l("Cards registered in stock"),
    "deviation.create": _l("Deviation created"),
    "deviation.note": _l("Note added"),
    "deviation.close": _l("Deviation closed"),
}

# changed field -> its label; fields not listed show under their own key
FIELD_LABELS = {
    "status": _l("Status"),
    "channel": _l("Channel"),
    "card": _l("Card"),
    "recipient": _l("Recipient"),
    "reason": _l("Reason"),
    "valid_until": _l("Valid until"),
    "receipt_due": _l("Receipt due"),
    "attesters": _l("Attesters"),
    "address": _l("Address"),
    "justification": _l("Why registered mail"),
    "registered_mail_number": _l("Registered mail number"),
    "dispatched_at": _l("Sent"),
    "received_at": _l("Receipt received"),
    "scan_filename": _l("Scanned receipt"),
    "block_reason": _l("Reason for blocking"),
    "blocked_at": _l("Blocked"),
    "kobe_reference": _l("Kobe reference"),
    "checks_confirmed": _l("Checks"),
    "approved_at": _l("Approved"),
    "rejection_reason": _l("Reason for rejection"),
    "rejected_at": _l("Rejected"),
    "returned_at": _l("Returned"),
    "lost_at": _l("Reported lost"),
    "lost_note": _l("How the card was lost"),
    "certificate_block_requested_at": _l("Certificate to be blocked"),
    "validity_days": _l("Days"),
    "expired_at": _l("Expired"),
    "expiry_reminder_7_at": _l("Expiry reminder (7 days)"),
    "expiry_reminder_3_at": _l("Expiry reminder (3 days)"),
    "receipt_reminder_at": _l("Receipt reminder"),
    "return_requested_at": _l("Return requested"),
    "id_method": _l("Identification method"),
    "certificate_issued_at": _l("Certificate issued"),
    "receipt_archived_at": _l("Receipt archived"),
    "note": _l("Note"),
    "type": _l("Type"),
    "issuance_id": _l("Issuance"),
}
# Internal bookkeeping: the "Who" column already names the actor; file paths mean nothing here.
HIDDEN_FIELDS = {"scan_path", "scan_mime", "registered_by_user_id", "blocked_by_user_id",
                 "approved_by_user_id", "certificate_issued_by_user_id", "bound_person_id",
                 "lost_by_user_id", "certificate_block_requested_by_user_id"}


def _as_datetime(value):
    """A datetime, or an ISO date-time string as the audit log stores it; else None."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and "T" in value:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def local_time(value) -> str:
    """A stored (UTC) moment as Swedish wall-clock time "YYYY-MM-DD HH:MM"; a date as itself."""
    if value in (None, ""):
        return DASH
    moment = _as_datetime(value)
    if moment is not None:
        return clock.to_local(clock.to_utc_naive(moment)).strftime(TIME_FORMAT)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def dash(value):
    """The value, or a dash when there is none."""
    return DASH if value is None or value == "" else value


def with_dash(formatter):
    """A column formatter that shows a dash for an empty value."""
    return lambda value: DASH if value is None or value == "" else dash(formatter(value))


def status_label(status) -> str:
    return str(STATUS_LABELS.get(status, dash(status)))


def channel_label(channel) -> str:
    return str(CHANNEL_LABELS.get(channel, dash(channel)))


def action_label(action) -> str:
    return str(ACTION_LABELS.get(action, action))


def _checks_text(checks: dict) -> str:
    from app.workflow.approval import CHECK_LABELS

    return ", ".join(f"{CHECK_LABELS.get(key, key)} {'✓' if done else '✗'}"
                     for key, done in checks.items())


def _reason_text(reason) -> str:
    from app.workflow.application import REASON_LABELS

    return str(REASON_LABELS.get(reason, reason))


def change_value(key, value) -> str:
    """One changed value in words."""
    if value is None or value == "":
        return DASH
    if key == "status":
        return status_label(value)
    if key == "channel":
        return channel_label(value)
    if key == "reason":
        return _reason_text(value)
    if key == "checks_confirmed" and isinstance(value, dict):
        return _checks_text(value)
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    if isinstance(value, list):
        return ", ".join(change_value(None, item) for item in value) or DASH
    if isinstance(value, dict):
        return ", ".join(f"{FIELD_LABELS.get(k, k)}: {change_value(k, v)}"
                         for k, v in value.items())
    if _as_datetime(value) is not None:
        return local_time(value)
    return str(value)


def changes(after) -> list[tuple[str, str]]:
    """(label, value) for each field an audit event set, leaving out internal bookkeeping."""
    if not isinstance(after, dict):
        return []
    return [(str(FIELD_LABELS.get(key, key)), change_value(key, value))
            for key, value in after.items() if key not in HIDDEN_FIELDS]


FILTERS = {"local_time": local_time, "dash": dash, "action_label": action_label,
           "changes": changes}


def install(flask_app=None) -> None:
    """Make the display helpers Jinja filters of this (or the current) app; safe to repeat."""
    (flask_app or current_app).jinja_env.filters.update(FILTERS)
