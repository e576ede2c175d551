"""Helpers shared by the workflow steps: the acting user, configuration, audit, e-mail, lookups."""

from flask import current_app, g, has_request_context
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app import audit, labels, outbox
from app.errors import NotFound, refuse
from app.extensions import db
from models import AccountLink, Issuance

SYSTEM = (None, "system")

# The reasons as the routine names them, for e-mails (which are always Swedish).
REASON_SV = labels.REASON_SV


def current_user():
    """The logged-in user (browser session or JWT), or None in jobs and commands."""
    if not has_request_context():
        return None
    from flask_login import current_user as login_user

    if getattr(login_user, "is_authenticated", False):
        return login_user._get_current_object()
    user = getattr(g, "user", None)
    if user is not None and getattr(user, "is_authenticated", False):
        return user
    return None


def actor():
    user = current_user()
    return (user.id, user.username) if user is not None else SYSTEM


def actor_user_id():
    return actor()[0]


def cfg(key):
    return current_app.config[key]


def record(action, entity, entity_id, before=None, after=None, system=False):
    """Audit row for the acting user (or the system for sweeps)."""
    return audit.record(action, entity, entity_id, before, after,
                        actor=SYSTEM if system else actor())


def record_many(entries, system=False) -> int:
    """Many audit rows at once, (action, entity, entity_id, before, after) each."""
    return audit.record_many(entries, actor=SYSTEM if system else actor())


def changes(obj, **values) -> tuple[dict, dict]:
    """Set attributes and return (before, after) of the fields that were given."""
    before = {key: getattr(obj, key) for key in values}
    for key, value in values.items():
        setattr(obj, key, value)
    return before, dict(values)


def load_issuance(issuance_id, lock=False) -> Issuance:
    query = select(Issuance).where(Issuance.id == issuance_id)
    if lock:
        query = query.with_for_update(of=Issuance)
    issuance = db.session.execute(
        query.execution_options(populate_existing=True)
    ).unique().scalar_one_or_none()
    if issuance is None:
        raise NotFound("issuance", issuance_id)
    return issuance


STATUS_LABELS = labels.ISSUANCE_STATUS
STEP_LABELS = {
    "approve": _l("Approve the issuance"),
    "reject": _l("Reject the issuance"),
    "register_receipt": _l("Register receipt"),
    "block": _l("Block the card"),
    "extend": _l("Extend the validity"),
    "return_card": _l("Return the card"),
    "expire": _l("End the validity"),
    "dispatched": _l("Sent by registered mail"),
    "receipt_returned": _l("Receipt returned"),
    "certificate_issued": _l("Certificate issued"),
    "close": _l("Close the deviation"),
    "move_card": _l("Move the card"),
    "mark_lost": _l("Mark the card as lost"),
    "report_lost": _l("Report the card lost"),
    "restock": _l("Put the card back in stock"),
    "destroy": _l("Destroy the card"),
}
CARD_STATUS_LABELS = labels.CARD_STATUS


def not_allowed(step_name, status):
    """The transition_not_allowed refusal, naming the step and status in words."""
    label = STATUS_LABELS.get(status) or CARD_STATUS_LABELS.get(status) or status
    return refuse("transition_not_allowed", step=str(STEP_LABELS.get(step_name, step_name)),
                  status=str(label))


def require_transition(issuance, step_name):
    from app.workflow.lifecycle import can_transition

    if not can_transition(issuance.status, step_name):
        raise not_allowed(step_name, issuance.status)


def user_id_for_person(person_id):
    from app.security import known_login

    known = known_login(person_id)
    if known is not None:
        return known
    return db.session.execute(
        select(AccountLink.user_id).where(AccountLink.person_id == person_id)
    ).scalar_one_or_none()


def people_addresses(issuance, attesters=True) -> list[str]:
    people = [issuance.recipient]
    if attesters:
        people += [link.person for link in issuance.attesters]
    return [p.email for p in people if p is not None and p.email]


def _mail_context(issuance, context):
    if issuance is not None:
        context.setdefault("issuance", issuance)
        context.setdefault("card", issuance.card)
        context.setdefault("recipient", issuance.recipient)
        context.setdefault("reason_name", REASON_SV.get(issuance.reason, issuance.reason))
    return context


def mail(template, to, issuance=None, dedupe_key=None, **context):
    """Queue an e-mail about an issuance in the current transaction."""
    return outbox.queue_email(template, to, _mail_context(issuance, context),
                              dedupe_key=dedupe_key,
                              issuance_id=issuance.id if issuance is not None else None)


def mail_many(messages, skip_invalid=False) -> int:
    """Queue many e-mails about issuances at once: (template, to, issuance, dedupe_key,
    context) tuples, as `mail` takes them. `skip_invalid` (the sweeps): a bad address leaves
    its message out instead of refusing the step."""
    return outbox.queue_many(
        ((template, to, _mail_context(issuance, dict(context)), dedupe_key,
          issuance.id if issuance is not None else None)
         for template, to, issuance, dedupe_key, context in messages),
        skip_invalid=skip_invalid)
