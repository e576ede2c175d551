"""Read-only questions the screens and the API ask: counts, the approval queue, receipts due."""

from datetime import timedelta

from sqlalchemy import Integer, case, cast, func, literal, select
from sqlalchemy.orm import joinedload, lazyload, selectinload

from app import clock
from app.extensions import db
from app.workflow.lifecycle import HOLDING, RECEIPT_DEADLINE, RUNNING, TRANSITIONS
from app.workflow.stock import lendable_today
from models import (
    CLOSED_FOR_CARD,
    CLOSED_FOR_PERSON,
    Deviation,
    Issuance,
    IssuanceAttester,
    Person,
    Receipt,
    ReserveCard,
)

# A receipt is awaited while it can still be registered: also after the card was blocked for
# it (the sweep blocks an overdue one the day after its deadline, and it is still overdue).
RECEIPT_STATUSES = tuple(sorted(TRANSITIONS["register_receipt"]))
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


def dashboard_counts(now=None, user=None, due_soon_days=None, keys=None, extra=None) -> dict:
    """The numbers on the home page, all in one statement of scalar subqueries, each reading
    only its own rows through a partial (or status) index. With `keys`, only those counts are
    made (Admin's page asks for four, not every count); `extra`: further key -> count query
    (e.g. another room's count) run in the same statement. With `user`, open deviations are
    only those the user may see (a manager: own units); with `due_soon_days`, also the
    receipts due within that many days (`receipts_due_soon`)."""
    queries = {**_count_queries(now, user, due_soon_days), **(extra or {})}
    chosen = {key: query for key, query in queries.items() if keys is None or key in keys}
    if not chosen:
        return {}
    row = db.session.execute(select(*(query.scalar_subquery().label(key)
                                      for key, query in chosen.items()))).one()
    return {key: int(value or 0) for key, value in zip(chosen, row, strict=True)}


def _count_queries(now, user, due_soon_days) -> dict:
    """key -> SELECT count(*) of the rows that count: open issuances on ix_issuances_open (its
    leading status column narrows each count to its statuses), cards on their status index,
    open deviations on ix_deviations_open_unit."""
    today = _today(now)
    receipt_open = (Issuance.status.in_(RECEIPT_STATUSES), Issuance.channel == "in_person",
                    Issuance.id.in_(pending_receipt()))

    def issuances(*conditions):
        return select(func.count()).select_from(Issuance).where(open_issuance(), *conditions)

    counts = {
        "awaiting_approval": issuances(Issuance.status == "awaiting_approval"),
        "receipts_overdue": issuances(*receipt_open, Issuance.receipt_due < today),
        "receipts_due": issuances(*receipt_open, Issuance.receipt_due >= today),
        "expiring_soon": issuances(Issuance.status.in_(RUNNING),
                                   Issuance.valid_until <= today + timedelta(days=7)),
        "open_issuances": issuances(Issuance.status.in_(OPEN)),
        "expired_not_returned": issuances(Issuance.status == "expired"),
        "mail_in_progress": issuances(Issuance.status.in_(("prepared", "sent",
                                                           "receipt_received"))),
        # "In stock" is what can be lent today (stock.lendable_today), as on the stock
        # screen; count(*), not count(id), so an index alone can answer it.
        "cards_in_stock": select(func.count()).select_from(ReserveCard)
        .where(lendable_today()),
        "cards_to_restock": select(func.count()).select_from(ReserveCard)
        .where(ReserveCard.status == "returned"),
        "open_deviations": _open_deviations(user),
    }
    if due_soon_days is not None:
        counts["receipts_due_soon"] = issuances(
            *receipt_open, Issuance.receipt_due.between(
                today, today + timedelta(days=due_soon_days)))
    return counts


def _open_deviations(user):
    """Open deviations (of the user's units), on the partial index ix_deviations_open_unit."""
    query = select(func.count()).select_from(Deviation).where(Deviation.status != "closed")
    if user is not None:
        from app.workflow.deviations import visibility

        condition = visibility(user)
        if condition is not None:
            query = query.where(condition)
    return query


def approval_queue():
    """Issuances awaiting Televäxeln, oldest first, with what the queue shows loaded by two
    statements whatever the page size: the card, the recipient and the attesters' persons.
    The rest of the model's eager loads (pickup point, units, Kobe rows, extension, receipt)
    stay lazy: the queue shows none of them, and one awaiting approval has neither extension
    nor receipt."""
    person_only = (lazyload(Person.unit), lazyload(Person.kobe))
    return (
        select(Issuance)
        .where(Issuance.status == "awaiting_approval")
        .options(
            joinedload(Issuance.card).lazyload(ReserveCard.pickup_point),
            joinedload(Issuance.recipient).options(*person_only),
            selectinload(Issuance.attesters).joinedload(IssuanceAttester.person)
            .options(*person_only),
            lazyload(Issuance.extension), lazyload(Issuance.receipt),
        )
        .order_by(Issuance.created_at, Issuance.id)
    )


def _days_between(later, earlier):
    """later - earlier in whole days, in the running database's dialect."""
    if db.session.get_bind().dialect.name == "postgresql":
        return later - earlier
    return cast(func.julianday(later) - func.julianday(earlier), Integer)


def receipts_due_count(now=None) -> tuple[int, int]:
    """(pending, overdue): how many in-person receipts are not registered, the way
    receipts_due lists them (on the partial index ix_receipts_pending)."""
    today = _today(now)
    late = Issuance.receipt_due < today
    row = db.session.execute(
        select(func.count(Issuance.id), func.coalesce(func.sum(case((late, 1), else_=0)), 0))
        .join(Receipt, Receipt.issuance_id == Issuance.id)
        .where(Issuance.channel == "in_person", Issuance.status.in_(RECEIPT_STATUSES),
               Receipt.received_at.is_(None))
    ).one()
    return int(row[0]) - int(row[1]), int(row[1])


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


# --- what is due next on one issuance ------------------------------------------------------------

def _due(code, when=None, today=None) -> dict:
    return {"code": code, "date": when,
            "days": (when - today).days if when is not None and today is not None else None}


def _receipt_due(issuance, today) -> list:
    receipt = issuance.receipt
    if receipt is None or receipt.received_at is not None or issuance.receipt_due is None:
        return []
    if issuance.status not in (*RECEIPT_DEADLINE, "sent"):
        return []
    overdue = issuance.receipt_due < today
    return [_due("receipt_overdue" if overdue else "receipt_due", issuance.receipt_due, today)]


def _card_back(issuance, today) -> list:
    """When the card must come back: by the end of its validity, or now if that has passed or
    the issuance was blocked or rejected."""
    if issuance.status not in HOLDING or issuance.status == "sent":
        return []
    if issuance.status in ("blocked", "rejected"):
        return [_due("return_now")]
    if issuance.valid_until is None or issuance.status == "awaiting_approval":
        return []
    late = issuance.valid_until < today or issuance.status == "expired"
    return [_due("return_overdue" if late else "return_by", issuance.valid_until, today)]


FIRST_STEP = {
    "awaiting_approval": "awaiting_approval",
    "prepared": "mail_dispatch",
    "receipt_received": "certificate_to_issue",
}


def due_next(issuance, now=None) -> list[dict]:
    """What is due next on an issuance, most pressing first: each {code, date, days} (days
    until the date; negative when it has passed). Empty when nothing more is due. The words
    for each code are in app.labels (DUE)."""
    today = _today(now)
    items = [_due(FIRST_STEP[issuance.status])] if issuance.status in FIRST_STEP else []
    items += _receipt_due(issuance, today)
    items += _card_back(issuance, today)
    if issuance.status == "returned" and issuance.card.status == "returned":
        items.append(_due("restock_or_destroy"))
    return items
