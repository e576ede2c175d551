"""Sends the outbox: claims due messages, delivers them over SMTP (or as .eml files when no SMTP
server is configured) and records the outcome.

Exactly once as far as SMTP allows: a message is claimed (status `sending`, with a lease in
`next_attempt_at`) in its own commit, so two dispatchers never take the same row, and it is
marked sent in its own commit right after the server accepted it. Only a crash between the
server's accept and that commit can send it twice; the Message-ID derived from the outbox id
makes such a duplicate recognisable. A dispatcher killed mid-batch leaves its claims behind;
once the lease has run out they go back to `pending` and the next dispatch sends them.
"""

import smtplib
import ssl
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from flask import current_app
from sqlalchemy import case, select, update

from app import access, audit, clock
from app.errors import NotFound, refuse
from app.extensions import db
from models import OutboxMessage

DEFAULT_LEASE_SECONDS = 300
INTERRUPTED = "Interrupted while sending (the dispatcher stopped); sent again."


def dispatch_due(now: datetime | None = None, limit: int = 100) -> dict:
    """Send every due message (at most `limit`). Returns counts: sent, retry, failed."""
    now = now or clock.now()
    counts = {"sent": 0, "retry": 0, "failed": 0, "recovered": recover_interrupted(now)}
    ids = _claim(now, limit)
    if not ids:
        return counts
    with _transport() as transport:
        for position, message_id in enumerate(ids):
            message = db.session.get(OutboxMessage, message_id)
            try:
                transport.send(message, build_email(message))
            except TransportDown as exc:
                # The server cannot be reached: every claimed message waits for the next try.
                for waiting_id in ids[position:]:
                    waiting = db.session.get(OutboxMessage, waiting_id)
                    counts[_record_failure(waiting, exc.__cause__ or exc, now)] += 1
                break
            except Exception as exc:  # any failure is recorded and retried
                counts[_record_failure(message, exc, now)] += 1
                transport.reset()
                continue
            _mark_sent(message_id)
            counts["sent"] += 1
    return counts


class TransportDown(Exception):
    """The mail server could not be reached or refused the session."""


def recover_interrupted(now: datetime) -> int:
    """Claims whose lease ran out (their dispatcher died) go back to pending, as one attempt."""
    max_attempts = current_app.config["OUTBOX_MAX_ATTEMPTS"]
    result = db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.status == "sending", OutboxMessage.next_attempt_at <= now)
        .values(
            status=case((OutboxMessage.attempts + 1 >= max_attempts, "failed"), else_="pending"),
            attempts=OutboxMessage.attempts + 1,
            last_error=INTERRUPTED,
            next_attempt_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount or 0


def _claim(now: datetime, limit: int) -> list[int]:
    """Take due pending messages for this dispatcher in one set-based, committed update."""
    lease = current_app.config.get("OUTBOX_SENDING_LEASE_SECONDS", DEFAULT_LEASE_SECONDS)
    due = (
        select(OutboxMessage.id)
        .where(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now)
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(limit)
    )
    if db.session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)  # a second worker takes other rows
    ids = db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(due.scalar_subquery()), OutboxMessage.status == "pending")
        .values(status="sending", next_attempt_at=now + timedelta(seconds=lease))
        .returning(OutboxMessage.id)
        .execution_options(synchronize_session=False)
    ).scalars().all()
    db.session.commit()
    return sorted(ids)


def _mark_sent(message_id: int) -> None:
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.status == "sending")
        .values(status="sent", sent_at=clock.now(), attempts=OutboxMessage.attempts + 1,
                last_error=None)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def _record_failure(message: OutboxMessage, exc: Exception, now: datetime) -> str:
    """One more attempt used: back to pending with exponential backoff, or failed at the limit."""
    config = current_app.config
    message.attempts = (message.attempts or 0) + 1
    message.last_error = f"{type(exc).__name__}: {exc}"[:2000]
    if message.attempts >= config["OUTBOX_MAX_ATTEMPTS"]:
        message.status = "failed"
    else:
        message.status = "pending"
        delay = config["OUTBOX_BACKOFF_SECONDS"] * 2 ** (message.attempts - 1)
        message.next_attempt_at = now + timedelta(seconds=delay)
    db.session.commit()
    return "failed" if message.status == "failed" else "retry"


def resend(message_id: int) -> OutboxMessage:
    """Admin: put a failed message back in the queue with fresh attempts (audited)."""
    message = db.session.get(OutboxMessage, message_id)
    if message is None:
        raise NotFound("outbox message", message_id)
    if message.status != "failed":
        raise refuse("transition_not_allowed", step="resend", status=message.status)
    before = {"status": message.status, "attempts": message.attempts,
              "last_error": message.last_error}
    try:
        message.status = "pending"
        message.attempts = 0
        message.next_attempt_at = clock.now()
        audit.record("outbox.resend", "outbox", message.id, before=before,
                     after={"status": "pending", "attempts": 0})
        db.session.info["outbox_dirty"] = True  # start dispatch at once after the commit
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return message


def message_id_for(outbox_id: int) -> str:
    domain = current_app.config["MAIL_FROM"].rpartition("@")[2] or "localhost"
    return f"<reservkort-outbox-{outbox_id}@{domain}>"


def build_email(message: OutboxMessage) -> EmailMessage:
    """The text + HTML e-mail for an outbox row, checked again by the access policy: a person
    who became protected since it was queued is named only to themselves."""
    subject, body_text, body_html = access.mail_texts(
        message.to_addrs, message.subject, message.body_text, message.body_html)
    email = EmailMessage()
    email["From"] = current_app.config["MAIL_FROM"]
    email["To"] = message.to_addrs
    email["Subject"] = subject
    email["Date"] = format_datetime(message.created_at.replace(tzinfo=UTC))
    email["Message-ID"] = message_id_for(message.id)
    email["X-Reservkort-Template"] = message.template
    email.set_content(body_text)
    if body_html:
        email.add_alternative(body_html, subtype="html")
    return email


def _transport():
    config = current_app.config
    if config.get("SMTP_HOST"):
        return SmtpTransport(config)
    return EmlTransport(Path(config["MAIL_DIR"]))


class SmtpTransport:
    """One SMTP connection per batch, opened lazily and reopened after a failure."""

    def __init__(self, config):
        self.config = config
        self.smtp = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.reset()

    def _connect(self):
        config = self.config
        smtp = smtplib.SMTP(config["SMTP_HOST"], config["SMTP_PORT"],
                            timeout=config.get("SMTP_TIMEOUT_SECONDS", 30))
        try:
            if config.get("SMTP_STARTTLS"):
                smtp.starttls(context=ssl.create_default_context())
            if config.get("SMTP_USERNAME"):
                smtp.login(config["SMTP_USERNAME"], config["SMTP_PASSWORD"])
        except BaseException:
            smtp.close()
            raise
        return smtp

    def send(self, message: OutboxMessage, email: EmailMessage) -> None:
        if self.smtp is None:
            try:
                self.smtp = self._connect()
            except (smtplib.SMTPException, OSError) as exc:
                raise TransportDown(str(exc)) from exc
        self.smtp.send_message(email)

    def reset(self):
        if self.smtp is not None:
            try:
                self.smtp.quit()
            except (smtplib.SMTPException, OSError):
                self.smtp.close()
            self.smtp = None


class EmlTransport:
    """Without an SMTP server: each message becomes `<outbox id>-<template>.eml` in MAIL_DIR."""

    def __init__(self, directory: Path):
        self.directory = directory

    def __enter__(self):
        self.directory.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, *exc):
        return None

    def send(self, message: OutboxMessage, email: EmailMessage) -> None:
        target = self.directory / f"{message.id}-{message.template}.eml"
        partial = target.with_suffix(".eml.part")
        partial.write_bytes(bytes(email))
        partial.replace(target)  # a reader never sees half a file

    def reset(self):
        return None
