"""The one table of words for stored codes: statuses, reasons, channels, deviation types, LOA
levels, organisation types, audit actions and field names, and how True/False/None and moments
read. Screens, exports, PDFs and e-mails all take their words from here, so a code never reaches
a person and no two places name the same thing differently.

`label(kind, code)` looks a code up ("status", "reason", ...); an unknown code is shown as it is
(never hidden), an empty one as nothing. `cell(value, column)` is what a list or show page
prints for a stored value: the column name decides which table a code is looked up in.
Paper documents and e-mails are always Swedish: `REASON_SV` names the reasons as the routine
does.
"""

from datetime import date, datetime

from flask_babel import get_locale, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

ISSUANCE_STATUS = {
    "awaiting_approval": _l("Awaiting approval"),
    "approved": _l("Approved"),
    "extended": _l("Extended"),
    "expired": _l("Expired"),
    "prepared": _l("Prepared"),
    "sent": _l("Sent"),
    "receipt_received": _l("Receipt received"),
    "active": _l("Active"),
    "rejected": _l("Rejected"),
    "blocked": _l("Blocked"),
    "returned": _l("Returned"),
    "lost": _l("Lost"),
}
CARD_STATUS = {
    "in_stock": _l("In stock"),
    "issued": _l("Issued"),
    "returned": _l("Returned"),
    "lost": _l("Lost"),
    "destroyed": _l("Destroyed"),
}
DEVIATION_STATUS = {
    "open": _l("Open"),
    "in_progress": _l("In progress"),
    "closed": _l("Closed"),
}
OUTBOX_STATUS = {
    "pending": _l("Waiting to be sent"),
    "sending": _l("Being sent"),
    "sent": _l("Sent"),
    "failed": _l("Failed"),
}
# Every status word, whatever it is the status of (the codes mean the same wherever they recur).
STATUS = {**OUTBOX_STATUS, **DEVIATION_STATUS, **CARD_STATUS, **ISSUANCE_STATUS}

REASON = {
    "forgotten": _l("Forgotten"),
    "lost_stolen_damaged": _l("Stolen, lost, broken or damaged"),
    "awaiting_new_card": _l("Awaiting new SITHS card"),
    "temporary_assignment": _l("Temporary assignment"),
}
# The reasons in the routine's own Swedish words, for paper documents and e-mails.
REASON_SV = {
    "forgotten": "Glömt",
    "lost_stolen_damaged": "Stulet, förlorat, sönder, skadat",
    "awaiting_new_card": "Väntar på nytt SITHS-kort",
    "temporary_assignment": "Tillfälligt uppdrag",
}
CHANNEL = {"in_person": _l("In person"), "registered_mail": _l("Registered mail")}
LOA = {"LOA2": _l("LOA2 (reserve card)"), "LOA3": _l("LOA3 (not for lending)")}
DEVIATION_TYPE = {
    "not_returned": _l("Card not returned"),
    "receipt_missing_blocked": _l("Blocked: receipt missing"),
    "card_lost": _l("Reserve card lost"),
    "mail_receipt_not_returned": _l("Registered-mail receipt not returned"),
    "manual": _l("Manual"),
}
ORG_TYPE = {
    "region": _l("Region"),
    "private_care_provider": _l("Private care provider"),
    "municipality": _l("Municipality"),
}
ORDINARY_CARD = {"active": _l("Active"), "ordered": _l("Ordered"), "none": _l("None")}
# outbox template -> the kind of e-mail
EMAIL_KIND = {
    "application_completed": _l("Application completed"),
    "approval_requested": _l("Approval requested"),
    "card_activation": _l("Card ready to be activated"),
    "certificate_issued": _l("Certificate issued"),
    "expiry_reminder": _l("Expiry reminder"),
    "issuance_blocked": _l("Card blocked"),
    "issuance_extended": _l("Validity extended"),
    "issuance_rejected": _l("Issuance rejected"),
    "not_returned_manager": _l("Card not returned (to the manager)"),
    "receipt_reminder": _l("Receipt reminder"),
    "return_request": _l("Return requested"),
}
RECEIPT_KIND = {"application": _l("Signed at the application"), "manual": _l("Registered by hand")}

# what is due next on an issuance (app.workflow.queries.due_next) -> the words; those with a
# date are in DUE_DATED, worded by how many days are left or past (due_text)
DUE = {
    "awaiting_approval": _l("Awaiting approval by Televäxeln"),
    "mail_dispatch": _l("The envelope is to be sent by registered mail"),
    "certificate_to_issue": _l("The certificate is to be issued in the SITHS portal"),
    "return_now": _l("The card is to be returned now"),
    "restock_or_destroy": _l("The card is back: restock it or destroy it"),
}


def due_text(item: dict) -> str:
    """One thing due next ({code, date, days}) in words, the date and the days counted."""
    code, days = item["code"], item.get("days")
    when = moment(item.get("date"))
    if code in DUE:
        return str(DUE[code])
    if code == "receipt_due":
        if days == 0:
            return _("The receipt is due today (%(date)s)", date=when)
        return ngettext("The receipt is due by %(date)s, in %(num)d day",
                        "The receipt is due by %(date)s, in %(num)d days", days, date=when)
    if code == "receipt_overdue":
        return ngettext("The receipt is overdue: it was due %(date)s, %(num)d day ago",
                        "The receipt is overdue: it was due %(date)s, %(num)d days ago",
                        -days, date=when)
    if code == "return_by":
        if days == 0:
            return _("The card is to be returned today (%(date)s)", date=when)
        return ngettext("The card is to be returned by %(date)s, in %(num)d day",
                        "The card is to be returned by %(date)s, in %(num)d days", days,
                        date=when)
    if code == "return_overdue":
        return _("The card is to be returned now: its validity ended %(date)s", date=when)
    return str(code)


# audit action -> what happened, in words
ACTION = {
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
    "user.create": _l("Login created"),
    "user.link": _l("Login linked to a person"),
    "user.create_link": _l("Login linked to its person when created"),
    "user.update": _l("Login changed"),
    "user.delete": _l("Login removed"),
    "user.password": _l("Password changed"),
    "role.create": _l("Role added"),
    "role.update": _l("Role changed"),
    "role.delete": _l("Role removed"),
    "group.create": _l("Group added"),
    "group.update": _l("Group changed"),
    "group.delete": _l("Group removed"),
    "user.unlink": _l("Login unlinked from its person"),
    "person.create": _l("Person added"),
    "person.update": _l("Person changed"),
    "unit.create": _l("Unit added"),
    "unit.update": _l("Unit changed"),
    "unit.managers": _l("Managers of the unit changed"),
    "signin.unlock": _l("Login unlocked"),
    "pickup_point.create": _l("Pickup point added"),
    "pickup_point.update": _l("Pickup point changed"),
    "org_type.update": _l("Organisation type changed"),
    "kobe.import": _l("Kobe register imported"),
    "kobe.set": _l("Kobe register changed"),
    "outbox.resend": _l("E-mail sent again"),
    "demo.load": _l("Demo data loaded"),
}
# audit entity -> its name
ENTITY = {
    "issuance": _l("Issuance"),
    "card": _l("Card"),
    "receipt": _l("Receipt"),
    "deviation": _l("Deviation"),
    "user": _l("Login"),
    "person": _l("Person"),
    "unit": _l("Unit"),
    "pickup_point": _l("Pickup point"),
    "organisation_type": _l("Organisation type"),
    "kobe": _l("Kobe register"),
    "kobe_register": _l("Kobe register"),
    "outbox": _l("E-mail"),
}

# stored field -> its name (audit history, refusals naming a field); unlisted fields show as is
FIELD = {
    "status": _l("Status"),
    "channel": _l("Channel"),
    "card": _l("Card"),
    "card_id": _l("Card"),
    "serial": _l("Card serial"),
    "recipient": _l("Recipient"),
    "recipient_id": _l("Recipient"),
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
    "managers": _l("Managers"),
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
    "deviation_id": _l("Deviation"),
    "person_id": _l("Person"),
    "unit_id": _l("Unit"),
    "pickup_point_id": _l("Pickup point"),
    "hsa_id": _l("HSA-id"),
    "recipient_hsa_id": _l("Recipient's HSA-id"),
    "person_hsa_id": _l("The person's HSA-id"),
    "manager_hsa_ids": _l("Managers"),
    "card_serial": _l("Card serial"),
    "description": _l("Description"),
    "serial_file": _l("Or a text or CSV file with serials"),
    "text": _l("Note"),
    "confirm": _l("Confirmation"),
    "from": _l("From date"),
    "to": _l("To date"),
    "personal_number": _l("Personal identity number"),
    "email": _l("E-mail"),
    "username": _l("Username"),
    "roles": _l("Roles"),
    "protected_identity_clearance": _l("Cleared for protected identity"),
    "loa": _l("LOA level"),
    "expires_on": _l("Expires"),
    "product_code": _l("Product code"),
    "min_stock": _l("Minimum stock"),
    "ordinary_card": _l("Ordinary SITHS card"),
    "reserve_card_order": _l("Reserve-card order"),
    "end_date": _l("End date"),
    "first": _l("First serial"),
    "last": _l("Last serial"),
    "serials": _l("Serials"),
}

# column or field name -> the table its codes are looked up in
_KINDS = {
    "status": STATUS,
    "issuance_status": ISSUANCE_STATUS,
    "card_status": CARD_STATUS,
    "deviation_status": DEVIATION_STATUS,
    "outbox_status": OUTBOX_STATUS,
    "reason": REASON,
    "channel": CHANNEL,
    "loa": LOA,
    "type": DEVIATION_TYPE,
    "deviation_type": DEVIATION_TYPE,
    "org_type": ORG_TYPE,
    "org_type_code": ORG_TYPE,
    "ordinary_card": ORDINARY_CARD,
    "kind": RECEIPT_KIND,
    "template": EMAIL_KIND,
    "action": ACTION,
    "entity": ENTITY,
    "field": FIELD,
}
KINDS = tuple(_KINDS)


# (kind, language) -> {code: words}: each code translated once per language, not in every cell
# of every list row (a translation looks up the request's language and catalogue each time).
_WORDS: dict[tuple[str, str], dict[str, str]] = {}


def words(kind: str) -> dict[str, str]:
    """code -> its words of that kind in the current language, in the table's order."""
    language = get_locale()
    if language is None:  # outside a request or app: nothing to remember it by
        return {code: str(text) for code, text in _KINDS[kind].items()}
    key = (kind, str(language))
    found = _WORDS.get(key)
    if found is None:
        found = _WORDS[key] = {code: str(text) for code, text in _KINDS[kind].items()}
    return found


def label(kind: str, code) -> str:
    """The words for a code of that kind; an unknown code as it is, nothing as ""."""
    if code is None or code == "":
        return ""
    found = words(kind).get(code) if isinstance(code, str) else None
    return found if found is not None else str(code)


def choices(kind: str) -> list[tuple[str, str]]:
    """(code, words) for a select list, in the table's order."""
    return list(words(kind).items())


def status(code) -> str:
    return label("status", code)


def reason(code) -> str:
    return label("reason", code)


def channel(code) -> str:
    return label("channel", code)


def action(code) -> str:
    return label("action", code)


def field(name) -> str:
    return label("field", name)


def yes_no(value) -> str:
    """Ja/Nej for a truth value; nothing for None."""
    if value is None:
        return ""
    return _("Yes") if value else _("No")


def moment(value) -> str:
    """A stored moment in Swedish wall-clock time to the minute; a date as itself."""
    from app import clock

    if value is None or value == "":
        return ""
    if isinstance(value, datetime):
        return clock.local_moment_text(clock.to_utc_naive(value))
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def cell(value, column: str | None = None):
    """What a screen, an export or a document shows for a stored value of that column."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return yes_no(value)
    if isinstance(value, (datetime, date)):
        return moment(value)
    if column:
        key = column.rsplit(".", 1)[-1]
        if key in _KINDS and isinstance(value, str):
            return label(key, value)
    return value


def search_field(kind: str, title, groups=()):
    """A search-form field that offers the codes of `kind` in words (a FAB list's filter on a
    code column: `search_form_extra_fields = {"status": labels.search_field("status", ...)}`),
    after `groups`: (code, words) of choices that stand for several codes."""
    from flask_appbuilder.fieldwidgets import Select2Widget
    from wtforms import SelectField

    return SelectField(title, widget=Select2Widget(), choices=lambda: [
        *((code, str(words)) for code, words in groups), *choices(kind)])
