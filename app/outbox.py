"""E-mail through the outbox: rendered from templates and stored in the caller's transaction.

A dispatcher (jobs) sends pending rows later. After a commit that queued mail, the registered
trigger (if any) is called so that dispatch can start at once.
"""

import logging
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from sqlalchemy import event, func, insert, select

from app import access, clock
from app.errors import RuleViolation, refuse
from app.extensions import db
from models import OutboxMessage

log = logging.getLogger(__name__)


def checked_address(address: str) -> str:
    """The address in its normal form, or a refusal (`email_address_invalid`, field `email`)
    naming it: the outbox only takes addresses a mail server can deliver to."""
    try:
        return _normalised(address.strip())
    except EmailNotValidError as exc:
        raise refuse("email_address_invalid", field="email", address=address,
                     reason=str(exc)) from exc


@lru_cache(maxsize=4096)
def _normalised(address: str) -> str:
    # A pure function of the text, and the slowest part of queueing a sweep's e-mails: the
    # same people (attesters, managers) are written to again and again.
    return validate_email(address, check_deliverability=False).normalized


def render_message(template: str, to, context: dict, identities=None) -> dict | None:
    """The message's addresses (each checked: an address that cannot be delivered to is a
    RuleViolation here, not at sending) and its texts, rendered through the access policy so
    that a protected person is named only to themselves. None when there is no address.
    `identities`: the protected people, when the caller read them once for many messages."""
    recipients = [checked_address(addr) for addr in ([to] if isinstance(to, str) else to)
                  if addr]
    if not recipients:
        return None
    to_addrs = ", ".join(dict.fromkeys(recipients))
    subject, body_text, body_html = access.mail_texts(
        to_addrs, *_render_texts(template, context), identities=identities)
    return {"template": template, "to_addrs": to_addrs, "subject": subject,
            "body_text": body_text, "body_html": body_html}


def _render_texts(template, context) -> tuple[str, str, str]:
    """Subject, text and HTML of `email/<template>.*`, as `render_template` renders them, with
    the template context made once for the three (a sweep renders thousands)."""
    app = current_app._get_current_object()
    context = {**context, "config": app.config}
    app.update_template_context(context)
    subject, text, html = (app.jinja_env.get_template(f"email/{template}.{kind}").render(context)
                           for kind in ("subject.txt", "txt", "html"))
    return subject.strip(), text, html


def queue_email(template: str, to, context: dict, dedupe_key=None, issuance_id=None):
    """Render `email/<template>.*` and store it for sending. Returns the row, or None when a
    message with the same dedupe key is already queued (so reminders never go twice)."""
    if dedupe_key and db.session.execute(
        select(OutboxMessage.id).where(OutboxMessage.dedupe_key == dedupe_key)
    ).first():
        return None
    rendered = render_message(template, to, context)
    if rendered is None:
        return None
    message = OutboxMessage(
        dedupe_key=dedupe_key,
        issuance_id=issuance_id,
        status="pending",
        attempts=0,
        next_attempt_at=clock.now(),
        created_at=clock.now(),
        **rendered,
    )
    db.session.add(message)
    db.session.info["outbox_dirty"] = True
    return message


def queue_many(messages, skip_invalid=False) -> int:
    """Queue many e-mails in the current transaction at once: one look-up of the dedupe keys
    already used and one INSERT of the rendered rows. `messages` are
    (template, to, context, dedupe_key, issuance_id) tuples, as for `queue_email`; a message
    whose key is already queued, or that has no address, is skipped. Returns how many rows
    were written."""
    messages = [(template, [a for a in ([to] if isinstance(to, str) else to) if a], context,
                 key, issuance_id) for template, to, context, key, issuance_id in messages]
    messages = [message for message in messages if message[1]]
    keys = [message[3] for message in messages if message[3]]
    taken = set()
    for start in range(0, len(keys), _KEY_BATCH):
        taken.update(db.session.execute(
            select(OutboxMessage.dedupe_key)
            .where(OutboxMessage.dedupe_key.in_(keys[start:start + _KEY_BATCH]))
        ).scalars())
    now = clock.now()
    rows = []
    # Read once for all the messages: outside a request each would read them again.
    identities = access.protected_identities() if messages else None
    for template, recipients, context, key, issuance_id in messages:
        if key and key in taken:
            continue
        taken.add(key)
        try:
            rendered = render_message(template, recipients, context, identities)
        except RuleViolation as exc:
            if not skip_invalid:
                raise
            # A sweep's mail follows changes already made: one person's bad address in the
            # register must not undo them for everyone. The message is left out, and said.
            log.warning("e-mail not queued: rule=%s template=%s issuance=%s",
                        exc.rule, template, issuance_id)
            continue
        if rendered is None:
            continue
        rows.append({**rendered, "dedupe_key": key, "issuance_id": issuance_id,
                     "status": "pending", "attempts": 0, "next_attempt_at": now,
                     "created_at": now})
    for start in range(0, len(rows), _KEY_BATCH):
        db.session.execute(insert(OutboxMessage), rows[start:start + _KEY_BATCH])
    if rows:
        db.session.info["outbox_dirty"] = True
    return len(rows)


_KEY_BATCH = 500
_triggers = []


def on_mail_committed(callback):
    """Register a function called after a commit that queued e-mail (e.g. enqueue dispatch)."""
    if callback not in _triggers:
        _triggers.append(callback)


@event.listens_for(db.session, "after_commit")
def _after_commit(session):
    if session.info.pop("outbox_dirty", False):
        for callback in list(_triggers):
            try:
                callback()
            except Exception:  # the periodic catch-up sends it anyway
                current_app.logger.exception("could not trigger e-mail dispatch")


@event.listens_for(db.session, "after_rollback")
def _after_rollback(session):
    session.info.pop("outbox_dirty", None)


def failed_count_query():
    """SELECT count(*) of the e-mails given up on after every attempt (Admin resends them),
    on ix_outbox_due (status first): an index alone answers it."""
    return select(func.count()).select_from(OutboxMessage) \
        .where(OutboxMessage.status == "failed")


def failed_count() -> int:
    return db.session.execute(failed_count_query()).scalar_one()
