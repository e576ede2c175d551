"""The audit log: append-only, each row hash-chained to the one before and sealed with a keyed
HMAC; checkpoints record the verified head of the chain."""

from flask_appbuilder import Model
from sqlalchemy import JSON, Boolean, Column, DateTime, Index, Integer, String


class AuditEvent(Model):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_entity", "entity", "entity_id"),)

    id = Column(Integer, primary_key=True)
    at = Column(DateTime, nullable=False, index=True)
    actor_user_id = Column(Integer, index=True)
    actor = Column(String(200), nullable=False)  # a username, or "system" for sweeps
    action = Column(String(64), nullable=False, index=True)
    entity = Column(String(64), nullable=False)
    entity_id = Column(Integer)
    before = Column(JSON)
    after = Column(JSON)
    prev_hash = Column(String(64), nullable=False)
    hash = Column(String(64), nullable=False, unique=True)
    mac = Column(String(64))  # HMAC of `hash` with a key kept outside the database


class AuditCheckpoint(Model):
    """One verification run: how far the chain was checked, what broke, and the sealed head."""

    __tablename__ = "audit_checkpoints"

    id = Column(Integer, primary_key=True)
    at = Column(DateTime, nullable=False)
    head_id = Column(Integer)
    head_hash = Column(String(64))
    mac = Column(String(64))  # HMAC of "head_id:head_hash"
    rows_checked = Column(Integer, nullable=False, default=0)
    ok = Column(Boolean, nullable=False)
    breaks = Column(JSON)  # [{"id": ..., "reason": ...}, ...]


class AuditHead(Model):
    """The chain's newest row, kept apart from the rows and updated in the same transaction as
    every append, sealed with the key outside the database: rows cut from the end leave a head
    that names more rows than are left. One row (id 1)."""

    __tablename__ = "audit_head"

    id = Column(Integer, primary_key=True)
    seq = Column(Integer, nullable=False)  # id of the newest audit row, 0 for an empty log
    head_hash = Column(String(64), nullable=False)
    mac = Column(String(64))  # HMAC of "head:seq:head_hash"
