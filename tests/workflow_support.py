"""Small helpers for the workflow tests: apply, approve, and put an issuance in any status."""

from datetime import date, datetime

from sqlalchemy import func, select, update

from app.extensions import db
from app.workflow import application, approval
from models import AuditEvent, Issuance, OutboxMessage, Person, ReserveCard

ALL_CHECKS = {k: True for k in ("identity", "reason", "card", "attesters", "card_or_order",
                                "reserve_order")}


def person(prefix) -> Person:
    return db.session.execute(
        select(Person).where(Person.name.like(f"{prefix}%"))
    ).unique().scalar_one()


def free_cards(count=1, loa="LOA2") -> list[str]:
    """Serials of sealed, unbound cards far from their own expiry."""
    return list(db.session.execute(
        select(ReserveCard.serial).where(ReserveCard.status == "in_stock", ReserveCard.loa == loa,
                                         ReserveCard.bound_person_id.is_(None))
        .order_by(ReserveCard.expires_on.desc(), ReserveCard.id).limit(count)
    ).scalars())


def attestations(people, caller=True):
    """The attesters as authenticated in the application session now (the logged-in user
    first when `caller`); the tests stand in for the password check of `application.attest`."""
    from app import clock
    from app.security import person_for_user
    from app.workflow._common import current_user

    people = [person(p) if isinstance(p, str) else p for p in people]
    me = person_for_user(current_user()) if caller else None
    if me is not None and len(people) >= 2 and people[0].id == me.id:
        me = None  # the caller given as attester 1 already
    return [application.Attestation(p, clock.now()) for p in ([me] if me else []) + people]


def apply(as_user, recipient="Anna", reason="forgotten", serial=None, attesters=("Helena",),
          user="intygsgivare1", **kwargs) -> Issuance:
    serial = serial or free_cards(1)[0]
    kwargs.setdefault("recipient_present", True)
    kwargs.setdefault("envelope_unopened", True)
    if reason == "temporary_assignment":
        kwargs.setdefault("assignment", "Tillfälligt uppdrag på akuten")
    with as_user(user):
        return application.apply_in_person(serial, person(recipient).hsa_id, reason,
                                           attestations(attesters), **kwargs)


def approve(as_user, issuance_id, reference="KOBE-1") -> Issuance:
    with as_user("televaxeln"):
        return approval.approve(issuance_id, reference, ALL_CHECKS)


def force_status(issuance_id, status, **values):
    db.session.execute(update(Issuance).where(Issuance.id == issuance_id)
                       .values(status=status, **values))
    db.session.commit()
    db.session.expire_all()


def count(model, *conditions) -> int:
    return db.session.execute(select(func.count()).select_from(model).where(*conditions)).scalar()


def audit_actions(entity_id=None, entity="issuance") -> list[str]:
    conditions = [AuditEvent.entity == entity]
    if entity_id is not None:
        conditions.append(AuditEvent.entity_id == entity_id)
    return list(db.session.execute(
        select(AuditEvent.action).where(*conditions).order_by(AuditEvent.id)).scalars())


def mails(template=None, issuance_id=None) -> list[OutboxMessage]:
    conditions = []
    if template:
        conditions.append(OutboxMessage.template == template)
    if issuance_id:
        conditions.append(OutboxMessage.issuance_id == issuance_id)
    return list(db.session.execute(
        select(OutboxMessage).where(*conditions).order_by(OutboxMessage.id)).scalars())


def at(day: date, hour=10) -> datetime:
    """A Swedish wall-clock moment as naive UTC (tests freeze the clock with it)."""
    from app import clock

    return clock.to_utc_naive(datetime(day.year, day.month, day.day, hour,
                                       tzinfo=clock.LOCAL_TZ))
