"""Read-only questions the screens and the API ask: counts, the approval queue, receipts due."""

from datetime import timedelta

from sqlalchemy import Integer, case, cast, func, literal, select
from sqlalchemy.orm import selectinload

from app import clock
from app.extensions import db
from app.workflow.lifecycle import HOLDING, RECEIPT_DEADLINE, RUNNING
from models import (
    CLOSED_FOR_CARD,
    CLOSED_FOR_PERSON,
    Deviation,
    Issuance,
    IssuanceAttester,
    Receipt,
    ReserveCard,
)

RECEIPT_STATUSES = RECEIPT_DEADLINE
OPEN = (*HOLDING, "prepared")


def _today(now):
    return clock.to_local(clock.to_utc_naive(now)).date() if now else clock.today()


def open_issuance():
    """The condition "the issuance is open", written as the partial indexes on open rows
    (ix_issuances_open, uq_issuances_open_recipient) are, so a count reads open rows only."""
    return Issuance.status.notin_(CLOSED_FOR_PERSON)


def card_out():
    """The condition "the card is still out" (not returned), as ix_issuances_not_returned_
    valid_until and uq_issuances_open_card are written."""
    return Issuance.status.notin_(CLOSED_FOR_CARD)


def pending_receipt():
    """Receipts not registered yet, as the partial index ix_receipts_pending is written."""
    return select(Receipt.issuance_id).where(Receipt.received_at.is_(None))


def dashboard_counts(now=None, user=None, due_soon_days=None) -> dict:
    """The numbers on the home page, from one query per table, each reading only open rows
    through a partial index. With `user`, open deviations are only those the user may see (a
    manager: own units); with `due_soon_days`, also the receipts due within that many days
    (`receipts_due_soon`)."""
    today = _today(now)
    receipt_open = (Issuance.status.in_(RECEIPT_STATUSES) & (Issuance.channel == "in_person")
                    & Issuance.id.in_(pending_receipt()))

    def count_if(condition):
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    issuance_row = db.session.execute(select(
        count_if(Issuance.status == "awaiting_approval"),
        count_if(receipt_open & (Issuance.receipt_due < today)),
        count_if(receipt_open & (Issuance.receipt_due >= today)),
        count_if(Issuance.status.in_(RUNNING)
                 & (Issuance.valid_until <= today + timedelta(days=7))),
        count_if(Issuance.status.in_(OPEN)),
        count_if(Issuance.status == "expired"),
        count_if(Issuance.status.in_(("prepared", "sent", "receipt_received"))),
    ).where(open_issuance())).one()
    # count(*), not count(id): the status index alone answers it (an index-only scan).
    cards_in_stock = db.session.execute(
        select(func.count()).select_from(ReserveCard).where(ReserveCard.status == "in_stock")
    ).scalar()
    cards_returned = db.session.execute(
        select(func.count()).select_from(ReserveCard).where(ReserveCard.status == "returned")
    ).scalar()
    open_deviations = _open_deviations(user)
    keys = ("awaiting_approval", "receipts_overdue", "receipts_due", "expiring_soon",
            "open_issuances", "expired_not_returned", "mail_in_progress")
    return {
        **{key: int(value) for key, value in zip(keys, issuance_row, strict=True)},
        "cards_in_stock": cards_in_stock,
        "cards_to_restock": cards_returned,
        "open_deviations": open_deviations,
        **({"receipts_due_soon": _receipts_due_soon(now, due_soon_days)}
           if due_soon_days is not None else {}),
    }


def _open_deviations(user) -> int:
    """Open deviations (of the user's units), on the partial index ix_deviations_open_unit."""
    query = select(func.count()).select_from(Deviation).where(Deviation.status != "closed")
    if user is not None:
        from app.workflow.deviations import visibility

        condition = visibility(user)
        if condition is not None:
            query = query.where(condition)
    return db.session.execute(query).scalar_one()


def _receipts_due_soon(now, days) -> int:
    """In-person receipts not yet registered whose deadline is today or within `days` days."""
    today = _today(now)
    return db.session.execute(
        select(func.count()).select_from(Issuance).where(
            open_issuance(), Issuance.channel == "in_person",
            Issuance.status.in_(RECEIPT_STATUSES), Issuance.id.in_(pending_receipt()),
            Issuance.receipt_due.between(today, today + timedelta(days=days)))
    ).scalar_one()


def approval_queue():
    """Issuances awaiting Televäxeln, oldest first, with card, recipient and attesters loaded
    by the same few statements whatever the page size."""
    return (
        select(Issuance)
        .where(Issuance.status == "awaiting_approval")
        .options(selectinload(Issuance.attesters).joinedload(IssuanceAttester.person))
        .order_by(Issuance.created_at, Issuance.id)
    )


def _days_between(later, earlier):
    """later - earlier in whole days, in the running database's dialect."""
    if db.session.get_bind().dialect.name == "postgresql":
        return later - earlier
    return cast(func.julianday(later) - func.julianday(earlier), Integer)


def receipts_due(now=None):
    """In-person issuances whose receipt is not registered, most urgent first, with
    `days_left` (negative: days overdue)."""
    today = _today(now)
    days_left = _days_between(Issuance.receipt_due, literal(today)).label("days_left")
    return (
        select(Issuance, days_left)
        .join(Receipt, Receipt.issuance_id == Issuance.id)
        .where(Issuance.channel == "in_person", Issuance.status.in_(RECEIPT_STATUSES),
               Receipt.received_at.is_(None))
        .order_by(Issuance.receipt_due, Issuance.id)
    )
