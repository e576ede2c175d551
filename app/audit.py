"""Append-only, hash-chained audit log: who did what, when, before and after.

Each row's hash covers its content and the previous row's hash, so an edit or a deletion made
directly in SQL breaks the chain at that row. On PostgreSQL appends are serialised with a
transaction-level advisory lock, so concurrent transactions cannot fork the chain, and a trigger
refuses UPDATE, DELETE and TRUNCATE of audit rows.

Anchored outside the table, with a key the database never sees (AUDIT_HMAC_KEY, or a key file
under the instance folder made on first start):
- every row carries a seal, HMAC(key, hash): rewriting a row and recomputing the later hashes
  with `row_hash` leaves seals that no longer match;
- a checkpoint (`checkpoint()`, a scheduled job and `audit-verify --checkpoint`) verifies the
  chain and records its head (id, hash, HMAC) in the audit_checkpoints table, in a file outside
  the database (AUDIT_CHECKPOINT_FILE) and in the log: deleting the newest rows (truncation)
  leaves a checkpoint pointing at a row that is gone;
- the chain head (audit_head: the newest row's id and hash, sealed) is moved in the same
  transaction as every append, so rows cut from the end after the newest checkpoint are caught
  too ("rows missing after seq N"). On PostgreSQL its row lock also serialises the appends, in
  place of an advisory lock, so the head costs no extra statement there; a trigger refuses to
  delete the head or move it backwards.
"""

import hashlib
import hmac
import json
import logging
import os
import secrets
from datetime import date, datetime
from pathlib import Path
from types import SimpleNamespace

from flask import current_app, has_request_context
from sqlalchemy import func, insert, select, text, true, update

from app import clock
from app.extensions import db
from models import AuditCheckpoint, AuditEvent, AuditHead

log = logging.getLogger("reservkort.audit")

GENESIS = "0" * 64
_AUDIT_LOCK_KEY = 7_361_001
_INSERT_BATCH = 1000
HEAD_ID = 1  # the one row of audit_head


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


def _chain_end(session):
    """The hash to chain the next row to, read from the head (locked on PostgreSQL until the
    commit, so concurrent transactions cannot fork the chain). Returns (prev_hash, head)."""
    session.flush()
    head = session.execute(
        select(AuditHead.seq, AuditHead.head_hash, AuditHead.mac)
        .where(AuditHead.id == HEAD_ID).with_for_update()).first()
    if head is not None:
        if not (head.mac and hmac.compare_digest(head.mac, head_seal(head.seq, head.head_hash))):
            log.error("audit chain head at seq %s carries no valid seal; appending after it",
                      head.seq, extra={"audit_head_seq": head.seq})
        return head.head_hash, head
    # No head (removed): serialise as before, chain to the last row and write a new head.
    log.error("audit chain head missing; a new one is written after row %s",
              session.execute(select(func.max(AuditEvent.id))).scalar())
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _AUDIT_LOCK_KEY})
    prev = session.execute(
        select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)).scalar()
    return prev or GENESIS, None


def _move_head(session, head, seq: int, head_hash: str) -> None:
    values = {"seq": seq, "head_hash": head_hash, "mac": head_seal(seq, head_hash)}
    if head is None:
        session.execute(insert(AuditHead).values(id=HEAD_ID, **values))
    else:
        session.execute(update(AuditHead).where(AuditHead.id == HEAD_ID).values(**values))


def record(action: str, entity: str, entity_id, before=None, after=None, actor=None):
    """Append one audit row to the current transaction and move the chain head to it."""
    session = db.session
    prev, head = _chain_end(session)
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
        prev_hash=prev,
    )
    event.hash = row_hash(event)
    event.mac = seal(event.hash)
    session.add(event)
    session.flush()
    _move_head(session, head, event.id, event.hash)
    return event


def record_many(entries, actor=None) -> int:
    """Append many audit rows to the current transaction at once, chained exactly as one
    `record` call after another would chain them: one read of the chain's end (locked), one
    INSERT of the prepared rows (executemany) and one move of the head. `entries` are
    (action, entity, entity_id, before, after) tuples; returns how many were written."""
    entries = list(entries)
    if not entries:
        return 0
    session = db.session
    prev, head = _chain_end(session)
    user_id, name = actor if actor else current_actor()
    at = clock.now()
    rows = []
    for action, entity, entity_id, before, after in entries:
        row = {"at": at, "actor_user_id": user_id, "actor": name, "action": action,
               "entity": entity, "entity_id": entity_id, "before": _jsonable(before),
               "after": _jsonable(after), "prev_hash": prev}
        row["hash"] = prev = row_hash(SimpleNamespace(**row))
        row["mac"] = seal(row["hash"])
        rows.append(row)
    # One statement for all rows; the ids follow the list's order, so the chain (walked by
    # id) is the order it was computed in.
    newest = None
    for start in range(0, len(rows), _INSERT_BATCH):
        ids = session.execute(
            insert(AuditEvent).returning(AuditEvent.id, sort_by_parameter_order=True),
            rows[start:start + _INSERT_BATCH]).scalars().all()
        newest = ids[-1]
    _move_head(session, head, newest, rows[-1]["hash"])
    return len(rows)


# --- The key and the seals ------------------------------------------------------------------

def ensure_key(flask_app) -> None:
    """At start: the HMAC key from AUDIT_HMAC_KEY, else from the key file (made on first start,
    readable by the owner only)."""
    config = flask_app.config
    if config.get("AUDIT_HMAC_KEY"):
        return
    path = Path(config.get("AUDIT_HMAC_KEY_FILE")
                or Path(config["INSTANCE_DIR"]) / "audit-hmac.key")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32))
    config["AUDIT_HMAC_KEY"] = path.read_text().strip()


def _key() -> bytes:
    return current_app.config["AUDIT_HMAC_KEY"].encode("utf-8")


def seal(value: str) -> str:
    return hmac.new(_key(), value.encode("utf-8"), hashlib.sha256).hexdigest()


def head_seal(seq, head_hash) -> str:
    return seal(f"head:{seq}:{head_hash}")


def _checkpoint_seal(head_id, head_hash) -> str:
    return seal(f"checkpoint:{head_id}:{head_hash}")


def _checkpoint_file() -> Path:
    config = current_app.config
    return Path(config.get("AUDIT_CHECKPOINT_FILE")
                or Path(config["INSTANCE_DIR"]) / "audit-checkpoints.jsonl")


# --- Verification -----------------------------------------------------------------------------

class Verification(dict):
    """ok, breaks ([{"id", "reason"}], every one found), rows_checked, head_id, head_hash."""

    @property
    def ok(self):
        return self["ok"]


ALTERED = "the row was altered"
GAP = "the row before it was altered or removed"
SEAL = "the row's seal does not match (rewritten without the key)"
TRUNCATED = "rows up to checkpoint %(head)s were removed (the end of the log was cut off)"
REWRITTEN = "the chain was rewritten up to checkpoint %(head)s"
FORGED = "checkpoint %(head)s does not carry a valid seal"
MISSING = "rows missing after seq %(last)s (the chain head names seq %(head)s)"
HEAD_MISMATCH = "the newest row does not match the chain head"
BEYOND_HEAD = "rows after seq %(head)s are not covered by the chain head"
HEAD_FORGED = "the chain head (seq %(head)s) does not carry a valid seal"
HEAD_GONE = "the chain head is missing"


def _head_breaks() -> list[dict]:
    """The head against the newest row, read in one statement (one snapshot: an append
    committing meanwhile cannot make them disagree)."""
    newest = select(AuditEvent.id, AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)
    newest = newest.subquery()
    found = db.session.execute(
        select(AuditHead.seq, AuditHead.head_hash, AuditHead.mac, newest.c.id, newest.c.hash)
        .select_from(AuditHead).outerjoin(newest, true())
        .where(AuditHead.id == HEAD_ID)).first()
    if found is None:
        last = db.session.execute(select(func.max(AuditEvent.id))).scalar()
        return [{"id": last, "reason": HEAD_GONE}] if last else []
    seq, head_hash, mac, last_id, last_hash = found
    params = {"head": seq, "last": last_id or 0}
    if not (mac and hmac.compare_digest(mac, head_seal(seq, head_hash))):
        return [{"id": seq, "reason": HEAD_FORGED, "params": params}]
    if (last_id or 0) < seq:
        return [{"id": last_id or 0, "reason": MISSING, "params": params}]
    if last_id > seq:
        return [{"id": last_id, "reason": BEYOND_HEAD, "params": params}]
    if last_id and last_hash != head_hash:
        return [{"id": last_id, "reason": HEAD_MISMATCH}]
    return []


def _anchors() -> list[dict]:
    """The newest checkpoint from the file outside the database and from the table."""
    anchors = []
    path = _checkpoint_file()
    if path.exists():
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        if lines:
            try:
                anchors.append(json.loads(lines[-1]))
            except ValueError:
                anchors.append({"head_id": None, "head_hash": None, "mac": None})
    row = db.session.execute(
        select(AuditCheckpoint).where(AuditCheckpoint.head_id.is_not(None))
        .order_by(AuditCheckpoint.id.desc()).limit(1)).scalar()
    if row is not None:
        anchors.append({"head_id": row.head_id, "head_hash": row.head_hash, "mac": row.mac})
    return anchors


def verify(batch_size: int = 5000, from_checkpoint: bool = False) -> Verification:
    """Walk the chain in order and report every break, then hold the log against its newest
    checkpoints and its head. `from_checkpoint`: start after the newest valid checkpoint (its
    head is held against the row it names, the rows after it are walked)."""
    breaks = []
    anchors = _anchors()
    valid_anchors = []
    for anchor in anchors:
        if anchor.get("mac") and hmac.compare_digest(
                anchor["mac"], _checkpoint_seal(anchor.get("head_id"), anchor.get("head_hash"))):
            valid_anchors.append(anchor)
        else:
            breaks.append({"id": anchor.get("head_id"), "reason": FORGED,
                           "params": {"head": anchor.get("head_id")}})
    expected_prev, last_id = GENESIS, 0
    start = max(valid_anchors, key=lambda a: a["head_id"]) if (
        from_checkpoint and valid_anchors) else None
    if start is not None:
        head = db.session.get(AuditEvent, start["head_id"])
        if head is not None and head.hash == start["head_hash"]:
            expected_prev, last_id = head.hash, head.id
    rows_checked = 0
    sealed_seen = False
    head_id = head_hash = None
    while True:
        rows = db.session.execute(
            select(AuditEvent).where(AuditEvent.id > last_id).order_by(AuditEvent.id)
            .limit(batch_size)
        ).scalars().all()
        if not rows:
            break
        for event in rows:
            rows_checked += 1
            if event.prev_hash != expected_prev:
                breaks.append({"id": event.id, "reason": GAP})
            if row_hash(event) != event.hash:
                breaks.append({"id": event.id, "reason": ALTERED})
            elif event.mac is None:
                if sealed_seen:  # rows from before the seals came are accepted, later ones not
                    breaks.append({"id": event.id, "reason": SEAL})
            elif not hmac.compare_digest(event.mac, seal(event.hash)):
                breaks.append({"id": event.id, "reason": SEAL})
            sealed_seen = sealed_seen or event.mac is not None
            expected_prev = event.hash  # go on: every later break is reported too
            last_id, head_id, head_hash = event.id, event.id, event.hash
        db.session.expunge_all()
    for anchor in valid_anchors:
        row = db.session.get(AuditEvent, anchor["head_id"])
        params = {"head": anchor["head_id"]}
        if row is None:
            breaks.append({"id": anchor["head_id"], "reason": TRUNCATED, "params": params})
        elif row.hash != anchor["head_hash"]:
            breaks.append({"id": anchor["head_id"], "reason": REWRITTEN, "params": params})
    breaks.extend(_head_breaks())
    if head_id is None and start is not None:
        head_id, head_hash = start["head_id"], start["head_hash"]
    unique = {(b["id"], b["reason"]): b for b in breaks}
    ordered = sorted(unique.values(), key=lambda b: (b["id"] is None, b["id"] or 0))
    return Verification(ok=not ordered, breaks=ordered, rows_checked=rows_checked,
                        head_id=head_id, head_hash=head_hash)


def describe(entry: dict) -> str:
    return entry["reason"] % entry.get("params", {}) if entry.get("params") else entry["reason"]


def checkpoint(from_checkpoint: bool = False) -> AuditCheckpoint:
    """Verify, then record the head: a row in audit_checkpoints, a line in the checkpoint file
    outside the database, and a log line. A broken log keeps its last good head."""
    result = verify(from_checkpoint=from_checkpoint)
    head_id, head_hash = result["head_id"], result["head_hash"]
    if head_id is None:  # an empty log (or nothing after the last checkpoint)
        head_id = db.session.execute(select(func.max(AuditEvent.id))).scalar()
        head_hash = db.session.execute(
            select(AuditEvent.hash).where(AuditEvent.id == head_id)).scalar() if head_id else None
    mac = _checkpoint_seal(head_id, head_hash) if result.ok and head_id else None
    row = AuditCheckpoint(at=clock.now(), head_id=head_id if mac else None,
                          head_hash=head_hash if mac else None, mac=mac,
                          rows_checked=result["rows_checked"], ok=result.ok,
                          breaks=[{"id": b["id"], "reason": b["reason"],
                                   "params": b.get("params", {})} for b in result["breaks"]])
    db.session.add(row)
    db.session.commit()
    if mac:
        path = _checkpoint_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"at": row.at.isoformat(), "head_id": head_id,
                                     "head_hash": head_hash, "mac": mac}) + "\n")
    log.info("audit checkpoint: ok=%s head=%s hash=%s mac=%s breaks=%s", result.ok, head_id,
             head_hash, mac, len(result["breaks"]),
             extra={"audit_head_id": head_id, "audit_head_mac": mac})
    return row


def last_checkpoint() -> AuditCheckpoint | None:
    return db.session.execute(
        select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc()).limit(1)).scalar()
