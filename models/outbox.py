"""The e-mail outbox: written in the same transaction as the change that causes the e-mail."""

from flask_appbuilder import Model
from sqlalchemy import JSON, Column, DateTime, Index, Integer, String, Text

from models._types import one_of

OUTBOX_STATUSES = ("pending", "sending", "sent", "failed")


class OutboxMessage(Model):
    __tablename__ = "outbox"
    __table_args__ = (
        one_of("status", OUTBOX_STATUSES, "ck_outbox_status"),
        Index("ix_outbox_due", "status", "next_attempt_at"),
    )

    id = Column(Integer, primary_key=True)
    # Stable key per logical e-mail so that a sweep run twice cannot queue it twice.
    dedupe_key = Column(String(200), unique=True)
    template = Column(String(64), nullable=False, index=True)
    to_addrs = Column(Text, nullable=False)  # comma-separated
    subject = Column(String(300), nullable=False)
    body_text = Column(Text, nullable=False)
    body_html = Column(Text)
    issuance_id = Column(Integer, index=True)
    status = Column(String(16), nullable=False, default="pending")
    attempts = Column(Integer, nullable=False, default=0)
    next_attempt_at = Column(DateTime)
    last_error = Column(Text)
    created_at = Column(DateTime, nullable=False, index=True)
    sent_at = Column(DateTime)
    # The dispatcher holding a `sending` row (a random token per claim).
    claim_token = Column(String(36))
    # Per address: {"status": "sent" | "refused" | "failed", "code": int, "error": str}.
    recipient_results = Column(JSON)
