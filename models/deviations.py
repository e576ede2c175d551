"""Deviations (avvikelser): incidents followed up by managers and Servicecenter."""

from flask_appbuilder import Model
from sqlalchemy import Column, DateTime, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import relationship

from models._types import one_of

DEVIATION_TYPES = (
    "not_returned",
    "receipt_missing_blocked",
    "card_lost",
    "mail_receipt_not_returned",
    "manual",
)
DEVIATION_STATUSES = ("open", "in_progress", "closed")
# The automatic deviations, as the unique index states them. A sweep's ON CONFLICT names it in
# these same words: a bound parameter there stops PostgreSQL from finding the index once the
# statement is prepared and planned generically.
AUTOMATIC_DEVIATIONS = text("type <> 'manual'")


class Deviation(Model):
    __tablename__ = "deviations"
    __table_args__ = (
        one_of("type", DEVIATION_TYPES, "ck_deviations_type"),
        one_of("status", DEVIATION_STATUSES, "ck_deviations_status"),
        # A sweep can never create the same automatic deviation twice for one issuance.
        Index(
            "uq_deviations_issuance_type",
            "issuance_id",
            "type",
            unique=True,
            postgresql_where=AUTOMATIC_DEVIATIONS,
            sqlite_where=AUTOMATIC_DEVIATIONS,
        ),
        # The deviation list of one unit, newest first (migration 0009_scale2).
        Index("ix_deviations_unit_created_id", "unit_id", "created_at", "id"),
        Index("ix_deviations_created_id", text("created_at DESC"), text("id DESC")),
        Index("ix_deviations_open_unit", "unit_id", postgresql_where=text("status <> 'closed'"),
              sqlite_where=text("status <> 'closed'")),
    )

    id = Column(Integer, primary_key=True)
    type = Column(String(32), nullable=False)
    status = Column(String(16), nullable=False, default="open")
    issuance_id = Column(Integer, ForeignKey("issuances.id"), index=True)
    person_id = Column(Integer, ForeignKey("people.id"), index=True)
    # Copied from the person at creation so a manager's report is a simple filter.
    unit_id = Column(Integer, ForeignKey("units.id"))
    # Indexed for the list's search box by card serial (migration 0008_search).
    card_serial = Column(String(20), index=True)
    description = Column(Text)
    created_at = Column(DateTime, nullable=False)
    created_by_user_id = Column(Integer, ForeignKey("ab_user.id"))
    closed_at = Column(DateTime)
    closed_by_user_id = Column(Integer, ForeignKey("ab_user.id"))

    issuance = relationship("Issuance")
    person = relationship("Person", lazy="joined")
    unit = relationship("Unit", lazy="joined")
    notes = relationship(
        "DeviationNote", order_by="DeviationNote.created_at", back_populates="deviation",
        lazy="selectin",
    )

    def __repr__(self):
        return f"Avvikelse {self.id}"


class DeviationNote(Model):
    __tablename__ = "deviation_notes"

    id = Column(Integer, primary_key=True)
    deviation_id = Column(Integer, ForeignKey("deviations.id", ondelete="CASCADE"), nullable=False,
                          index=True)
    text = Column(Text, nullable=False)
    created_at = Column(DateTime, nullable=False)
    author_user_id = Column(Integer, ForeignKey("ab_user.id"))
    author_name = Column(String(200))

    deviation = relationship(Deviation, back_populates="notes")
