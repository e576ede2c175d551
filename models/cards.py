"""Reserve cards in their sealed envelopes, and the pickup points where they are kept."""

from flask_appbuilder import Model
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    text,
)
from sqlalchemy.orm import relationship

from models._types import one_of

LOA_LEVELS = ("LOA2", "LOA3")
# in_stock: sealed envelope at a pickup point; issued: out with a holder;
# returned: back at Servicecenter, waiting to be restocked or destroyed.
CARD_STATUSES = ("in_stock", "issued", "returned", "lost", "destroyed")
SERIAL_PATTERN = r"^[0-9]{6,20}$"


class PickupPoint(Model):
    __tablename__ = "pickup_points"
    __table_args__ = (CheckConstraint("min_stock >= 0", name="ck_pickup_points_min_stock"),)

    id = Column(Integer, primary_key=True)
    name = Column(String(200), nullable=False, unique=True)
    address = Column(String(400))
    min_stock = Column(Integer, nullable=False, default=5)
    active = Column(Boolean, nullable=False, default=True)

    def __repr__(self):
        return self.name


class ReserveCard(Model):
    __tablename__ = "reserve_cards"
    __table_args__ = (
        one_of("loa", LOA_LEVELS, "ck_reserve_cards_loa"),
        one_of("status", CARD_STATUSES, "ck_reserve_cards_status"),
        Index("ix_reserve_cards_stock", "status", "pickup_point_id", "expires_on"),
        # The start page's "in stock" count (stock.lendable_today): sealed cards not past
        # their expiry, answered by this index alone (migration 0009_scale2).
        Index("ix_reserve_cards_lendable", "bound_person_id", "expires_on",
              postgresql_include=["loa"],
              postgresql_where=text("status = 'in_stock'"),
              sqlite_where=text("status = 'in_stock'")),
    )

    id = Column(Integer, primary_key=True)
    serial = Column(String(20), nullable=False, unique=True)
    product_code = Column(String(16), nullable=False)
    loa = Column(String(4), nullable=False, default="LOA2")
    expires_on = Column(Date, nullable=False, index=True)
    status = Column(String(16), nullable=False, default="in_stock", index=True)
    pickup_point_id = Column(Integer, ForeignKey("pickup_points.id"), index=True)
    # The first holder: with the binding rule on, the card may only go to this person again.
    bound_person_id = Column(Integer, ForeignKey("people.id"), index=True)
    created_at = Column(DateTime)

    pickup_point = relationship(PickupPoint, lazy="joined")
    bound_person = relationship("Person")

    def __repr__(self):
        return self.serial
