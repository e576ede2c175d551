"""Append-only, hash-chained audit log: who did what, when, before and after.

Each row's hash covers its content and the previous row's hash, so an edit or a deletion made
directly in SQL breaks the chain at that row. On PostgreSQL appends are serialised with a
transaction-level advisory lock, so concurrent transactions cannot fork the chain.
"""

import hashlib
import json
from datetime import date, datetime
from types import SimpleNamespace

from flask import has_request_context
from sqlalchemy import insert, select, text

from app import clock
from app.extensions import db
from models import AuditEvent

GENESIS = "0" * 64
_AUDIT_LOCK_KEY = 7_361_001
_INSERT_BATCH = 1000


def _jsonable(value):
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def row_hash(event: AuditEvent) -> str:
    payload = json.dumps(
        {
            "at": event.at.isoformat(timespec="microseconds"),
            "actor": event.actor,
            "actor_user_id": event.actor_user_id,
            "action": event.action,
            "entity": event.entity,
            "entity_id": event.entity_id,
            "before": event.before,
            "after": event.after,
            "prev_hash": event.prev_hash,
        },
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def current_actor():
    """(user_id, name) of the logged-in user, or the system for jobs and commands."""
    if has_request_context():
        from flask_login import current_user

        if getattr(current_user, "is_authenticated", False):
            return current_user.id, current_user.username
    return None, "system"


def record(action: str, entity: str, entity_id, before=None, after=None, actor=None):
    """Append one audit row to the current transaction."""
    session = db.session
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _AUDIT_LOCK_KEY})
    session.flush()
    prev = session.execute(
        select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)
    ).scalar()
    user_id, name = actor if actor else current_actor()
    event = AuditEvent(
        at=clock.now(),
        actor_user_id=user_id,
        actor=name,
        action=action,
        entity=entity,
        entity_id=entity_id,
        before=_jsonable(before),
        after=_jsonable(after),
        prev_hash=prev or GENESIS,
    )
    event.hash = row_hash(event)
    session.add(event)
    session.flush()
    return event


def record_many(entries, actor=None) -> int:
    """Append many audit rows to the current transaction at once, chained exactly as one
    `record` call after another would chain them: one lock, one look-up of the chain's end,
    and one INSERT of the prepared rows (executemany). `entries` are
    (action, entity, entity_id, before, after) tuples; returns how many were written."""
    entries = list(entries)
    if not entries:
        return 0
    session = db.session
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _AUDIT_LOCK_KEY})
    session.flush()
    prev = session.execute(
        select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)
    ).scalar() or GENESIS
    user_id, name = actor if actor else current_actor()
    at = clock.now()
    rows = []
    for action, entity, entity_id, before, after in entries:
        row = {"at": at, "actor_user_id": user_id, "actor": name, "action": action,
               "entity": entity, "entity_id": entity_id, "before": _jsonable(before),
               "after": _jsonable(after), "prev_hash": prev}
        row["hash"] = prev = row_hash(SimpleNamespace(**row))
        rows.append(row)
    # One statement for all rows; the ids follow the list's order, so the chain (walked by
    # id) is the order it was computed in.
    for start in range(0, len(rows), _INSERT_BATCH):
        session.execute(insert(AuditEvent), rows[start:start + _INSERT_BATCH])
    return len(rows)


def verify(batch_size: int = 5000):
    """Walk the chain in order. Returns (ok, first_bad_id, explanation)."""
    expected_prev = GENESIS
    last_id = 0
    while True:
        rows = db.session.execute(
            select(AuditEvent).where(AuditEvent.id > last_id).order_by(AuditEvent.id)
            .limit(batch_size)
        ).scalars().all()
        if not rows:
            return True, None, "ok"
        for event in rows:
            if event.prev_hash != expected_prev:
                return False, event.id, "the row before it was altered or removed"
            if row_hash(event) != event.hash:
                return False, event.id, "the row was altered"
            expected_prev = event.hash
            last_id = event.id
        db.session.expunge_all()
