"""Issuances: one card lent to one person for one reason, with its attesters and extension."""

from flask_appbuilder import Model
from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import relationship

from models._types import one_of

REASONS = ("forgotten", "lost_stolen_damaged", "awaiting_new_card", "temporary_assignment")
CHANNELS = ("in_person", "registered_mail")
ISSUANCE_STATUSES = (
    # in person
    "awaiting_approval",
    "approved",
    "extended",
    "expired",
    # registered mail
    "prepared",
    "sent",
    "receipt_received",
    "active",
    # exits
    "rejected",
    "blocked",
    "returned",
    "lost",
)
# The issuance is over: the card came back, or it was reported lost.
ENDED = ("returned", "lost")
# A person holds a card from the completed application (in person) or from the dispatch (mail)
# until it is returned or reported lost: blocked, expired and rejected cards still count. A
# registered-mail card still at Servicecenter (`prepared`) is not out with the person.
CLOSED_FOR_PERSON = (*ENDED, "prepared")
# A card belongs to its issuance until the issuance ends (a prepared envelope is reserved).
CLOSED_FOR_CARD = ENDED


def _not_in(values):
    return text("status NOT IN (" + ", ".join(f"'{v}'" for v in values) + ")")


class Issuance(Model):
    __tablename__ = "issuances"
    __table_args__ = (
        one_of("status", ISSUANCE_STATUSES, "ck_issuances_status"),
        one_of("reason", REASONS, "ck_issuances_reason"),
        one_of("channel", CHANNELS, "ck_issuances_channel"),
        CheckConstraint("original_days > 0", name="ck_issuances_original_days"),
        # The database itself refuses a second open issuance for one person or one card.
        Index(
            "uq_issuances_open_recipient",
            "recipient_id",
            unique=True,
            postgresql_where=_not_in(CLOSED_FOR_PERSON),
            sqlite_where=_not_in(CLOSED_FOR_PERSON),
        ),
        Index(
            "uq_issuances_open_card",
            "card_id",
            unique=True,
            postgresql_where=_not_in(CLOSED_FOR_CARD),
            sqlite_where=_not_in(CLOSED_FOR_CARD),
        ),
        # The approval queue (status, oldest first) and the issuance list filtered on a
        # status (newest first, read backwards): migration 0009_scale2.
        Index("ix_issuances_status_created_id", "status", "created_at", "id"),
        Index("ix_issuances_status_valid_until", "status", "valid_until"),
        # The list pages, the start page and the sweeps (migration 0006_scale says which).
        Index("ix_issuances_created_id", text("created_at DESC"), text("id DESC")),
        Index("ix_issuances_status_id", "status", "id"),
        Index("ix_issuances_open", "status", "channel", "receipt_due", "valid_until", "id",
              postgresql_where=_not_in(CLOSED_FOR_PERSON), sqlite_where=_not_in(CLOSED_FOR_PERSON)),
        Index("ix_issuances_not_returned_valid_until", "valid_until",
              postgresql_where=_not_in(CLOSED_FOR_CARD), sqlite_where=_not_in(CLOSED_FOR_CARD)),
    )

    id = Column(Integer, primary_key=True)
    channel = Column(String(16), nullable=False, default="in_person")
    status = Column(String(20), nullable=False)
    card_id = Column(Integer, ForeignKey("reserve_cards.id"), nullable=False, index=True)
    recipient_id = Column(Integer, ForeignKey("people.id"), nullable=False, index=True)
    reason = Column(String(32), nullable=False)
    assignment = Column(Text)
    created_at = Column(DateTime, nullable=False)
    created_by_user_id = Column(Integer, ForeignKey("ab_user.id"))
    issued_at = Column(DateTime)
    valid_until = Column(Date, index=True)
    original_days = Column(Integer, nullable=False)
    receipt_due = Column(Date, index=True)
    # Televäxeln
    kobe_reference = Column(String(64))
    checks_confirmed = Column(JSON)
    approved_at = Column(DateTime)
    approved_by_user_id = Column(Integer, ForeignKey("ab_user.id"))
    rejection_reason = Column(Text)
    rejected_at = Column(DateTime)
    # Blocking
    block_reason = Column(Text)
    blocked_at = Column(DateTime)
    blocked_by_user_id = Column(Integer, ForeignKey("ab_user.id"))
    # End of life
    expired_at = Column(DateTime)
    return_requested_at = Column(DateTime)
    returned_at = Column(DateTime)
    # Lost: who reported it, and that the certificate is to be blocked (who and when)
    lost_at = Column(DateTime)
    lost_by_user_id = Column(Integer, ForeignKey("ab_user.id"))
    lost_note = Column(Text)
    certificate_block_requested_at = Column(DateTime)
    certificate_block_requested_by_user_id = Column(Integer, ForeignKey("ab_user.id"))
    # Registered mail
    address = Column(Text)
    justification = Column(Text)
    registered_mail_number = Column(String(64))
    dispatched_at = Column(DateTime)
    id_method = Column(String(64))
    certificate_issued_at = Column(DateTime)
    certificate_issued_by_user_id = Column(Integer, ForeignKey("ab_user.id"))
    # Reminders already queued (the sweeps set these so they never send twice).
    receipt_reminder_at = Column(DateTime)
    expiry_reminder_7_at = Column(DateTime)
    expiry_reminder_3_at = Column(DateTime)

    card = relationship("ReserveCard", lazy="joined")
    recipient = relationship("Person", lazy="joined", foreign_keys=[recipient_id])
    attesters = relationship(
        "IssuanceAttester",
        order_by="IssuanceAttester.position",
        cascade="all, delete-orphan",
        lazy="selectin",
        back_populates="issuance",
    )
    extension = relationship(
        "Extension", uselist=False, back_populates="issuance", lazy="selectin"
    )
    receipt = relationship("Receipt", uselist=False, back_populates="issuance", lazy="selectin")

    def __repr__(self):
        return f"Utgivning {self.id}"


class IssuanceAttester(Model):
    """An attester who authenticated in the application session and vouched for the recipient."""

    __tablename__ = "issuance_attesters"
    __table_args__ = (
        UniqueConstraint("issuance_id", "person_id", name="uq_issuance_attesters_person"),
        UniqueConstraint("issuance_id", "position", name="uq_issuance_attesters_position"),
    )

    id = Column(Integer, primary_key=True)
    issuance_id = Column(Integer, ForeignKey("issuances.id", ondelete="CASCADE"), nullable=False,
                         index=True)
    person_id = Column(Integer, ForeignKey("people.id"), nullable=False, index=True)
    user_id = Column(Integer, ForeignKey("ab_user.id"))
    position = Column(Integer, nullable=False)
    authenticated_at = Column(DateTime, nullable=False)

    issuance = relationship(Issuance, back_populates="attesters")
    person = relationship("Person", lazy="joined")


class Extension(Model):
    __tablename__ = "extensions"

    id = Column(Integer, primary_key=True)
    # unique: the database too allows one extension per issuance
    issuance_id = Column(Integer, ForeignKey("issuances.id", ondelete="CASCADE"), nullable=False,
                         unique=True)
    requested_at = Column(DateTime, nullable=False)
    previous_valid_until = Column(Date, nullable=False)
    new_valid_until = Column(Date, nullable=False)
    reason = Column(String(32), nullable=False)
    by_user_id = Column(Integer, ForeignKey("ab_user.id"))

    issuance = relationship(Issuance, back_populates="extension")
