"""Sends the outbox: claims due messages, delivers them over SMTP (or as .eml files when no SMTP
server is configured) and records the outcome per recipient.

Exactly once as far as SMTP allows:
- a dispatcher claims at most `limit` due rows (their ids selected first with FOR UPDATE SKIP
  LOCKED on PostgreSQL, then updated by id) under a random owner token, with a lease in
  `next_attempt_at`, in its own commit; two dispatchers never take the same row;
- before each message the lease is renewed, so a slow batch never outlives its claims, and a
  row whose claim was lost (the lease ran out and another dispatcher took it) is skipped;
- only the owner marks a row sent, in its own commit right after the server accepted it; that
  commit is retried through a short database outage. Only a crash between the server's accept
  and that commit can send it twice; the Message-ID derived from the outbox id makes such a
  duplicate recognisable.
A dispatcher killed mid-batch leaves its claims behind; once the lease has run out they go back
to `pending` and the next dispatch sends them.

Errors: a temporary one (4xx, a connection that fails) is retried with exponential backoff; a
permanent one (5xx, a message that cannot be built) fails the message at once with the reason.
A recipient refused while others were accepted is recorded in `recipient_results` and only the
recipients not yet accepted are tried again.
"""

import logging
import smtplib
import ssl
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from flask import current_app
from rq.timeouts import BaseTimeoutException
from sqlalchemy import case, func, select, update
from sqlalchemy.exc import DBAPIError

from app import access, audit, clock
from app.errors import NotFound, refuse
from app.extensions import db
from models import OutboxMessage

log = logging.getLogger("reservkort.mailer")

DEFAULT_LEASE_SECONDS = 300
INTERRUPTED = "Interrupted while sending (the dispatcher stopped); sent again."
# Never recorded as a failed delivery: the job itself was stopped (rq's job timeout).
NOT_A_DELIVERY_ERROR = (BaseTimeoutException,)


class TransportDown(Exception):
    """The mail server could not be reached or refused the session."""


class PermanentError(Exception):
    """A message that can never be delivered as it is (5xx, or it cannot be built)."""


def dispatch_due(now: datetime | None = None, limit: int = 100) -> dict:
    """Send every due message (at most `limit`). Returns counts: sent, retry, failed,
    recovered, and `next_due` (the earliest future attempt still waiting, or None)."""
    now = now or clock.now()
    counts = {"sent": 0, "retry": 0, "failed": 0, "recovered": recover_interrupted(now)}
    token = str(uuid.uuid4())
    ids = _claim(now, limit, token)
    try:
        if ids:
            _send_claimed(ids, token, now, counts)
    finally:
        _release(ids, token)  # claims not reached (a timeout, a crash) go back at once
    counts["next_due"] = next_due(now)
    return counts


def _send_claimed(ids, token, now, counts):
    with _transport() as transport:
        for position, message_id in enumerate(ids):
            if not _renew(message_id, token, now):
                continue  # the claim was lost to another dispatcher: it is theirs now
            message = db.session.get(OutboxMessage, message_id)
            try:
                email = build_email(message)
            except NOT_A_DELIVERY_ERROR:
                raise
            except Exception as exc:  # bad headers: no retry can fix it
                counts[_record_failure(message, PermanentError(f"{type(exc).__name__}: {exc}"),
                                       now)] += 1
                continue
            try:
                refused = transport.send(message, email, _open_recipients(message))
            except NOT_A_DELIVERY_ERROR:
                raise
            except TransportDown as exc:
                # The server cannot be reached: every claimed message waits for the next try.
                for waiting_id in ids[position:]:
                    waiting = db.session.get(OutboxMessage, waiting_id)
                    if waiting.claim_token == token and waiting.status == "sending":
                        counts[_record_failure(waiting, exc.__cause__ or exc, now)] += 1
                break
            except smtplib.SMTPRecipientsRefused as exc:  # every open recipient refused
                counts[_record_refusals(message, exc.recipients, now, token)] += 1
                transport.reset()
                continue
            except Exception as exc:  # recorded, and retried or failed by its kind
                counts[_record_failure(message, exc, now)] += 1
                transport.reset()
                continue
            if refused:
                counts[_record_refusals(message, refused, now, token)] += 1
            else:
                _mark_sent(message_id, token, _open_recipients(message))
                counts["sent"] += 1


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
            claim_token=None,
        )
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount or 0


def _lease(now: datetime) -> datetime:
    seconds = current_app.config.get("OUTBOX_SENDING_LEASE_SECONDS", DEFAULT_LEASE_SECONDS)
    return max(now, clock.now()) + timedelta(seconds=seconds)


def _claim(now: datetime, limit: int, token: str) -> list[int]:
    """Take at most `limit` due pending messages for this dispatcher: the ids are selected
    first (locked, skipping rows another dispatcher is claiming) and then updated by id, so
    the limit holds whatever plan the database picks."""
    due = (
        select(OutboxMessage.id)
        .where(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now)
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(limit)
    )
    if db.session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)  # a second worker takes other rows
    candidates = db.session.execute(due).scalars().all()
    if not candidates:
        db.session.commit()
        return []
    ids = db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(candidates), OutboxMessage.status == "pending")
        .values(status="sending", claim_token=token, next_attempt_at=_lease(now))
        .returning(OutboxMessage.id)
        .execution_options(synchronize_session=False)
    ).scalars().all()
    db.session.commit()
    return sorted(ids)


def _renew(message_id: int, token: str, now: datetime) -> bool:
    """Extend this dispatcher's lease on one message; False if the claim is no longer ours."""
    result = db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.status == "sending",
               OutboxMessage.claim_token == token)
        .values(next_attempt_at=_lease(now))
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    db.session.expire_all()
    return bool(result.rowcount)


def _release(ids, token) -> None:
    """Give back the claims this dispatcher still holds without having tried them (no attempt
    used). Best effort: if the database is away the lease returns them later anyway."""
    if not ids:
        return
    try:
        db.session.rollback()
        db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), OutboxMessage.status == "sending",
                   OutboxMessage.claim_token == token)
            .values(status="pending", claim_token=None, next_attempt_at=clock.now())
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
    except DBAPIError:
        db.session.rollback()
        log.warning("could not release %s outbox claims; their lease returns them", len(ids))


def next_due(now: datetime) -> datetime | None:
    """The earliest future attempt among waiting messages (to schedule a dispatch for it)."""
    return db.session.execute(
        select(func.min(OutboxMessage.next_attempt_at))
        .where(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at > now)
    ).scalar()


def _recipients(message: OutboxMessage) -> list[str]:
    return [addr.strip() for addr in message.to_addrs.split(",") if addr.strip()]


def _open_recipients(message: OutboxMessage) -> list[str]:
    """The recipients still to try: neither accepted nor refused for good."""
    results = message.recipient_results or {}
    return [addr for addr in _recipients(message)
            if (results.get(addr) or {}).get("status") not in ("sent", "failed")]


def _mark_sent(message_id: int, token: str, addresses) -> None:
    """The server accepted the message: record it, as the owner of the claim only. The commit
    is retried through a short database outage, since the mail has already gone."""
    deadline = time.monotonic() + current_app.config.get("OUTBOX_MARK_SENT_RETRY_SECONDS", 60)
    delay = 0.2
    while True:
        try:
            message = db.session.get(OutboxMessage, message_id)
            results = dict(message.recipient_results or {})
            for addr in addresses:
                results[addr] = {"status": "sent"}
            # A recipient refused for good on an earlier attempt keeps the message visible.
            refused = any(entry.get("status") == "failed" for entry in results.values())
            db.session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == message_id, OutboxMessage.status == "sending",
                       OutboxMessage.claim_token == token)
                .values(status="failed" if refused else "sent", sent_at=clock.now(),
                        attempts=OutboxMessage.attempts + 1,
                        last_error=message.last_error if refused else None,
                        claim_token=None, recipient_results=results)
                .execution_options(synchronize_session=False)
            )
            db.session.commit()
            return
        except DBAPIError as exc:
            db.session.rollback()
            if time.monotonic() + delay > deadline:
                log.error("outbox %s was accepted by the server but could not be marked sent: "
                          "%s", message_id, exc.__class__.__name__)
                raise
            log.warning("outbox %s accepted; marking it sent failed (%s), retrying",
                        message_id, exc.__class__.__name__)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def is_permanent(exc: Exception) -> bool:
    """5xx answers and messages that cannot be built never succeed by trying again."""
    if isinstance(exc, PermanentError):
        return True
    code = getattr(exc, "smtp_code", None)
    return isinstance(code, int) and 500 <= code < 600


def _retry_or_fail(message: OutboxMessage, error: str, permanent: bool, now: datetime) -> str:
    config = current_app.config
    message.attempts = (message.attempts or 0) + 1
    message.last_error = error[:2000]
    message.claim_token = None
    if permanent or message.attempts >= config["OUTBOX_MAX_ATTEMPTS"]:
        message.status = "failed"
    else:
        message.status = "pending"
        delay = config["OUTBOX_BACKOFF_SECONDS"] * 2 ** (message.attempts - 1)
        message.next_attempt_at = now + timedelta(seconds=delay)
    db.session.commit()
    return "failed" if message.status == "failed" else "retry"


def _record_failure(message: OutboxMessage, exc: Exception, now: datetime) -> str:
    """One more attempt used: back to pending with exponential backoff, or failed at once when
    the error is permanent, or at the attempt limit."""
    permanent = is_permanent(exc)
    kind = "permanent" if permanent else "temporary"
    return _retry_or_fail(message, f"{kind}: {type(exc).__name__}: {exc}", permanent, now)


def _describe(response) -> tuple[int | None, str]:
    code, text = (response if isinstance(response, tuple) else (None, response))
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return code, str(text)


def _record_refusals(message: OutboxMessage, refused: dict, now: datetime, token: str) -> str:
    """Some recipients refused: the accepted ones are done, a permanently refused one is failed
    on its own, a temporarily refused one is tried again (only it) after the backoff."""
    results = dict(message.recipient_results or {})
    temporary = []
    for addr in _open_recipients(message):
        if addr not in refused:
            results[addr] = {"status": "sent"}
            continue
        code, text = _describe(refused[addr])
        permanent = isinstance(code, int) and 500 <= code < 600
        results[addr] = {"status": "failed" if permanent else "refused", "code": code,
                         "error": text[:500]}
        if not permanent:
            temporary.append(addr)
    message.recipient_results = results
    error = "; ".join(f"{addr}: {results[addr]['code']} {results[addr]['error']}"
                      for addr in refused if addr in results)
    if temporary:
        outcome = _retry_or_fail(message, f"refused: {error}", False, now)
        if outcome == "failed":
            for addr in temporary:
                results[addr] = {**results[addr], "status": "failed"}
            message.recipient_results = dict(results)
            db.session.commit()
        return outcome
    # Nobody left to try: failed with the refusals shown (recipient_results says who got it;
    # "Send again" tries only those who did not).
    if any(entry.get("status") == "sent" for entry in results.values()):
        message.sent_at = clock.now()
    message.attempts = (message.attempts or 0) + 1
    message.status = "failed"
    message.last_error = f"permanent: refused: {error}"[:2000]
    message.claim_token = None
    db.session.commit()
    return "failed"


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
        if message.recipient_results:  # try again whoever has not received it
            message.recipient_results = {
                addr: entry for addr, entry in message.recipient_results.items()
                if entry.get("status") == "sent"}
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

    def __exit__(self, exc_type, exc, traceback):
        if exc_type is not None and self.smtp is not None:
            # Stopped mid-conversation (rq's job timeout): a polite QUIT could wait for the
            # stalled server for the whole SMTP timeout, past the job's own limit.
            self.smtp.close()
            self.smtp = None
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

    def send(self, message: OutboxMessage, email: EmailMessage, to_addrs) -> dict:
        """Deliver to `to_addrs`; returns the refused ones {address: (code, text)}."""
        if self.smtp is None:
            try:
                self.smtp = self._connect()
            except (smtplib.SMTPException, OSError) as exc:
                raise TransportDown(str(exc)) from exc
        return self.smtp.send_message(email, to_addrs=list(to_addrs)) or {}

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

    def send(self, message: OutboxMessage, email: EmailMessage, to_addrs) -> dict:
        target = self.directory / f"{message.id}-{message.template}.eml"
        partial = target.with_suffix(".eml.part")
        partial.write_bytes(bytes(email))
        partial.replace(target)  # a reader never sees half a file
        return {}

    def reset(self):
        return None
