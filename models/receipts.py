"""The receipt (kvittens) the recipient signs on paper and Servicecenter registers."""

from flask_appbuilder import Model
from sqlalchemy import JSON, Column, Date, DateTime, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import relationship

from models._types import one_of


class Receipt(Model):
    __tablename__ = "receipts"
    __table_args__ = (
        one_of("kind", ("application", "manual"), "ck_receipts_kind"),
        # Receipts not yet registered: the start page and the sweeps.
        Index("ix_receipts_pending", "issuance_id", "due_on",
              postgresql_where=text("received_at IS NULL"),
              sqlite_where=text("received_at IS NULL")),
    )

    id = Column(Integer, primary_key=True)
    issuance_id = Column(Integer, ForeignKey("issuances.id", ondelete="CASCADE"), nullable=False,
                         unique=True)
    # application: printed from the wizard; manual: sent with the registered mail
    kind = Column(String(16), nullable=False, default="application")
    due_on = Column(Date, index=True)
    received_at = Column(DateTime)
    registered_by_user_id = Column(Integer, ForeignKey("ab_user.id"))
    scan_path = Column(String(400))
    scan_mime = Column(String(64))
    archived_at = Column(DateTime)
    # The card handler's copy of the receipt data, kept for follow-up (mail flow).
    data_copy = Column(JSON)

    issuance = relationship("Issuance", back_populates="receipt")
