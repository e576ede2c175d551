"""The system's own register of what it needs to know from Kobe, per person."""

from flask_appbuilder import Model
from sqlalchemy import Boolean, Column, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import relationship

from models._types import one_of

ORDINARY_CARD_STATES = ("active", "ordered", "none")


class KobeRecord(Model):
    __tablename__ = "kobe_register"
    __table_args__ = (one_of("ordinary_card", ORDINARY_CARD_STATES, "ck_kobe_ordinary_card"),)

    id = Column(Integer, primary_key=True)
    person_id = Column(Integer, ForeignKey("people.id", ondelete="CASCADE"), nullable=False,
                       unique=True)
    ordinary_card = Column(String(16), nullable=False, default="none")
    reserve_card_order = Column(Boolean, nullable=False, default=False)
    updated_at = Column(DateTime, index=True)
    # When `ordinary_card` last changed value (not any change of the row): the return request
    # follows the ordinary card becoming active after the issue.
    ordinary_card_since = Column(DateTime, index=True)
    updated_by = Column(String(128))

    person = relationship("Person", back_populates="kobe")
