"""The audit log: append-only, each row hash-chained to the one before."""

from flask_appbuilder import Model
from sqlalchemy import JSON, Column, DateTime, Index, Integer, String


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
