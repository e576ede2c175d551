"""The deadline sweeps: set-based, idempotent, safe to run twice or side by side.

Each sweep finds what is due with one query and changes it with one guarded statement (an
UPDATE whose WHERE repeats the condition, or an INSERT ... ON CONFLICT DO NOTHING against the
deviation index), so a second run, or a concurrent one, finds nothing left to do. Only the rows
a statement really changed get their audit row and e-mail, and those are written set-based
too: the changed issuances are loaded with one query, their audit rows appended to the chain
with one INSERT (`audit.record_many`) and their e-mails queued with one (`outbox.queue_many`).

Every sweep's condition includes "the issuance is open" (or "the card is out") written as the
partial indexes are (migration 0006_scale), so a sweep reads open rows only, whatever statuses
its rule names.
"""

from datetime import timedelta

from sqlalchemy import and_, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import joinedload, lazyload, selectinload

from app import clock
from app.access import scope
from app.extensions import db
from app.workflow._common import cfg, mail_many, people_addresses, record_many
from app.workflow._tx import transaction
from app.workflow.lifecycle import HOLDING, RECEIPT_DEADLINE, RUNNING, TRANSITIONS
from app.workflow.queries import card_out, open_issuance, pending_receipt
from models import (
    AUTOMATIC_DEVIATIONS,
    Deviation,
    Issuance,
    IssuanceAttester,
    KobeRecord,
    Person,
    Receipt,
    ReserveCard,
    SweepRun,
)

# In person: the receipt deadline holds whatever happened to the validity or the approval.
RECEIPT_STATUSES = RECEIPT_DEADLINE
# Past its end date: the validity is over, also for one still awaiting approval.
EXPIRING = tuple(sorted(TRANSITIONS["expire"]))
# The ordinary card became active: the reserve card must come back (unless already asked).
RETURN_REQUEST_STATUSES = tuple(s for s in HOLDING if s != "expired")
RETURN_REASONS = ("awaiting_new_card", "lost_stolen_damaged", "forgotten")
BLOCK_REASON = "Kvittensen kom inte in till Servicecenter i tid (spärrat automatiskt)."
_CHUNK = 500


def _receipt_missing():
    return Issuance.id.in_(pending_receipt())


def _due(*conditions) -> dict[int, str]:
    """id -> status of the issuances matching the conditions (one query)."""
    return dict(db.session.execute(select(Issuance.id, Issuance.status).where(*conditions)).all())


def _guarded_update(ids, values, *conditions) -> list[int]:
    """UPDATE the given issuances where the conditions still hold; the ids really changed."""
    changed = []
    ids = sorted(ids)
    for start in range(0, len(ids), _CHUNK):
        statement = (
            update(Issuance)
            .where(Issuance.id.in_(ids[start:start + _CHUNK]), *conditions)
            .values(**values)
            .returning(Issuance.id)
            .execution_options(synchronize_session=False)
        )
        changed += db.session.execute(statement).scalars().all()
    return sorted(changed)


def _load(ids, *options, attesters=False) -> list[Issuance]:
    """The changed issuances with what their audit rows and e-mails need (card, recipient,
    and the attesters when asked), in few queries: nothing else is loaded."""
    issuances = []
    ids = sorted(ids)
    # Lazy (not noload): the options stay with the instances in the session, and a later
    # step in it must still see the receipt, the extension and the attesters.
    # The e-mails name the card, the recipient and the attesters: their own further
    # relations (pickup point, unit, Kobe row) are not read with them.
    people = (lazyload(Person.unit), lazyload(Person.kobe))
    options = (lazyload(Issuance.receipt), lazyload(Issuance.extension),
               joinedload(Issuance.card).lazyload(ReserveCard.pickup_point),
               *(joinedload(Issuance.recipient).options(*people),),
               *((selectinload(Issuance.attesters).joinedload(IssuanceAttester.person)
                  .options(*people),) if attesters else (lazyload(Issuance.attesters),)),
               *options)
    for start in range(0, len(ids), _CHUNK):
        issuances += db.session.execute(
            select(Issuance).where(Issuance.id.in_(ids[start:start + _CHUNK]))
            .options(*options).order_by(Issuance.id)
            .execution_options(populate_existing=True)
        ).unique().scalars().all()
    return issuances


def _follow_up(issuances, audit=None, email=None) -> None:
    """The audit rows and e-mails of the changed issuances, each written set-based.
    `audit(issuance)` gives (action, before, after); `email(issuance)` gives
    (template, to, dedupe_key, context) or None."""
    if audit is not None:
        record_many([(action, "issuance", issuance.id, before, after)
                     for issuance in issuances
                     for action, before, after in [audit(issuance)]], system=True)
    if email is not None:
        mail_many([(template, to, issuance, key, context)
                   for issuance in issuances if (message := email(issuance)) is not None
                   for template, to, key, context in [message]], skip_invalid=True)


def _insert_deviations(kind, description, *conditions) -> list[tuple[int, int]]:
    """INSERT ... SELECT one deviation per matching issuance, skipping those that already have
    one of this type; returns (deviation id, issuance id) of the rows inserted."""
    # The unit and the serial are looked up by key for the matching rows only (no join that
    # the planner could answer by reading people or cards whole).
    unit = select(Person.unit_id).where(Person.id == Issuance.recipient_id).scalar_subquery()
    serial = select(ReserveCard.serial).where(ReserveCard.id == Issuance.card_id) \
        .scalar_subquery()
    source = (
        select(
            literal(kind), literal("open"), Issuance.id, Issuance.recipient_id, unit, serial,
            literal(description), literal(clock.now()),
        )
        .where(*conditions)
        # Skip those that have one already (on the unique index), so a second run reads none.
        .where(~select(Deviation.id).where(Deviation.issuance_id == Issuance.id,
                                           Deviation.type == kind).exists())
    )
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(Deviation)
        .from_select(["type", "status", "issuance_id", "person_id", "unit_id", "card_serial",
                      "description", "created_at"], source)
        .on_conflict_do_nothing(index_elements=["issuance_id", "type"],
                                index_where=AUTOMATIC_DEVIATIONS)
        .returning(Deviation.id, Deviation.issuance_id)
    )
    return sorted(tuple(row) for row in db.session.execute(statement).all())


def _audit_deviations(rows, kind):
    record_many([("deviation.create", "deviation", deviation_id, None,
                  {"type": kind, "issuance_id": issuance_id})
                 for deviation_id, issuance_id in rows], system=True)


# --- the sweeps -------------------------------------------------------------------------------

def block_missing_receipts(today) -> int:
    """The receipt was not registered by its due date: block, deviation, notice."""
    conditions = (open_issuance(), Issuance.channel == "in_person",
                  Issuance.status.in_(RECEIPT_STATUSES), Issuance.receipt_due < today,
                  _receipt_missing())
    due = _due(*conditions)
    values = {"status": "blocked", "block_reason": BLOCK_REASON, "blocked_at": clock.now(),
              "blocked_by_user_id": None}
    blocked = _guarded_update(due, values, *conditions)
    _follow_up(
        _load(blocked, attesters=True),
        audit=lambda issuance: ("issuance.block", {"status": due[issuance.id]}, values),
        email=lambda issuance: ("issuance_blocked", people_addresses(issuance),
                                f"blocked_receipt:{issuance.id}", {}))
    if blocked:
        rows = _insert_deviations(
            "receipt_missing_blocked",
            "Reservkortet spärrades automatiskt eftersom kvittensen inte kom in i tid.",
            Issuance.id.in_(blocked))
        _audit_deviations(rows, "receipt_missing_blocked")
    return len(blocked)


def remind_receipts(today) -> int:
    last_day = today + timedelta(days=cfg("RECEIPT_REMINDER_DAYS_BEFORE"))
    conditions = (open_issuance(), Issuance.channel == "in_person",
                  Issuance.status.in_(RECEIPT_STATUSES), Issuance.receipt_reminder_at.is_(None),
                  Issuance.receipt_due >= today, Issuance.receipt_due <= last_day,
                  _receipt_missing())
    values = {"receipt_reminder_at": clock.now()}
    reminded = _guarded_update(_due(*conditions), values, *conditions)
    _follow_up(
        _load(reminded),
        audit=lambda issuance: ("issuance.receipt_reminder", {"receipt_reminder_at": None},
                                values),
        email=lambda issuance: ("receipt_reminder", people_addresses(issuance, attesters=False),
                                f"receipt_reminder:{issuance.id}", {}))
    return len(reminded)


def _expiry_window(today, which):
    first, second = cfg("EXPIRY_REMINDER_DAYS_BEFORE")
    if which == 0:
        return first, Issuance.expiry_reminder_7_at, (
            Issuance.valid_until > today + timedelta(days=second),
            Issuance.valid_until <= today + timedelta(days=first))
    return second, Issuance.expiry_reminder_3_at, (
        Issuance.valid_until >= today, Issuance.valid_until <= today + timedelta(days=second))


def remind_expiry(today, which) -> int:
    """The end date is near (7 and 3 days by default): tell the holder once per reminder."""
    days, column, window = _expiry_window(today, which)
    conditions = (open_issuance(), Issuance.status.in_(RUNNING), column.is_(None), *window)
    values = {column.key: clock.now()}
    reminded = _guarded_update(_due(*conditions), values, *conditions)
    _follow_up(
        _load(reminded),
        audit=lambda issuance: ("issuance.expiry_reminder", {column.key: None}, values),
        email=lambda issuance: (
            "expiry_reminder", people_addresses(issuance, attesters=False),
            f"expiry_reminder:{days}:{issuance.id}:{issuance.valid_until}", {"days": days}))
    return len(reminded)


def expire(today) -> int:
    """Past the end date: expired, and the holder is asked to return the card."""
    conditions = (open_issuance(), Issuance.status.in_(EXPIRING), Issuance.valid_until < today)
    due = _due(*conditions)
    now = clock.now()
    values = {"status": "expired", "expired_at": now,
              "return_requested_at": func.coalesce(Issuance.return_requested_at, now)}
    expired = _guarded_update(due, values, *conditions)
    _follow_up(
        _load(expired),
        audit=lambda issuance: ("issuance.expire", {"status": due[issuance.id]}, {
            "status": "expired", "expired_at": now,
            "return_requested_at": issuance.return_requested_at}),
        email=lambda issuance: ("return_request", people_addresses(issuance, attesters=False),
                                f"return_request:expired:{issuance.id}", {"why": "expired"}))
    return len(expired)


def report_not_returned(today) -> int:
    """Not back a grace period after the end date: a deviation and a notice to the manager."""
    last_day = today - timedelta(days=cfg("RETURN_GRACE_DAYS"))
    rows = _insert_deviations(
        "not_returned",
        f"Reservkortet har inte återlämnats inom {cfg('RETURN_GRACE_DAYS')} dagar efter "
        "giltighetstidens slut.",
        card_out(), Issuance.status.in_(HOLDING), Issuance.valid_until < last_day)
    _audit_deviations(rows, "not_returned")
    # The deviation's managers: those of the unit it arose in (and of the units above it).
    unit_of = dict(db.session.execute(
        select(Deviation.issuance_id, Deviation.unit_id)
        .where(Deviation.id.in_([deviation_id for deviation_id, _ in rows]))
    ).all()) if rows else {}
    managers = scope.responsible_managers(unit_of.values())
    mail_many([
        ("not_returned_manager", manager.email, issuance,
         f"not_returned:{issuance.id}:{manager.hsa_id}", {"manager": manager})
        for issuance in _load([issuance_id for _, issuance_id in rows])
        for manager in managers.get(unit_of.get(issuance.id), []) if manager.email
    ], skip_invalid=True)
    return len(rows)


def request_return_for_active_card(today) -> int:
    """Kobe says the ordinary card became active after the issuance was recorded (not merely
    that the person's Kobe row changed): the reserve card must come back."""
    ordinary_active = select(KobeRecord.id).where(
        KobeRecord.person_id == Issuance.recipient_id,
        KobeRecord.ordinary_card == "active",
        KobeRecord.ordinary_card_since >= Issuance.created_at,
    ).exists()
    conditions = (open_issuance(), Issuance.status.in_(RETURN_REQUEST_STATUSES),
                  Issuance.reason.in_(RETURN_REASONS), Issuance.return_requested_at.is_(None),
                  ordinary_active)
    values = {"return_requested_at": clock.now()}
    requested = _guarded_update(_due(*conditions), values, *conditions)
    _follow_up(
        _load(requested),
        audit=lambda issuance: ("issuance.return_request", {"return_requested_at": None},
                                values),
        email=lambda issuance: ("return_request", people_addresses(issuance, attesters=False),
                                f"return_request:ordinary_card:{issuance.id}",
                                {"why": "ordinary_card"}))
    return len(requested)


def report_mail_receipts(today) -> int:
    """A registered-mail receipt not back in time: a deviation for the card handlers."""
    overdue = Issuance.id.in_(
        select(Receipt.issuance_id).where(Receipt.received_at.is_(None), Receipt.due_on < today)
    )
    rows = _insert_deviations(
        "mail_receipt_not_returned",
        f"Kvittensen för reservkort skickat med rekommenderad post har inte kommit tillbaka "
        f"inom {cfg('MAIL_RECEIPT_DUE_DAYS')} dagar.",
        open_issuance(), and_(Issuance.channel == "registered_mail", Issuance.status == "sent"),
        overdue)
    _audit_deviations(rows, "mail_receipt_not_returned")
    return len(rows)


SWEEPS = (
    ("receipts_blocked", block_missing_receipts),
    ("receipt_reminders", remind_receipts),
    ("expiry_reminders_first", lambda today: remind_expiry(today, 0)),
    ("expiry_reminders_second", lambda today: remind_expiry(today, 1)),
    ("expired", expire),
    ("not_returned", report_not_returned),
    ("return_requests_ordinary_card", request_return_for_active_card),
    ("mail_receipts_overdue", report_mail_receipts),
)


def run_all(now=None, trigger="schedule") -> dict:
    """Run every sweep as of `now` (default the clock), each in its own transaction, and keep
    a record of the run. Returns sweep name -> rows changed."""
    started = clock.now()
    as_of = clock.to_utc_naive(now) if now else started
    result = {}
    with clock.frozen_at(as_of):
        today = clock.today()
        for name, sweep in SWEEPS:
            with transaction():
                result[name] = sweep(today)
    with transaction():
        db.session.add(SweepRun(started_at=started, finished_at=clock.now(), as_of=as_of,
                                trigger=trigger, result=result))
    return result
