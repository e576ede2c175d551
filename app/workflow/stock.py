"""The stock of sealed envelopes: register, move, lose, restock, destroy, and the summary."""

import re
from datetime import date, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import case, func, insert, select

from app import clock
from app.errors import NotFound, refuse
from app.extensions import db
from app.validation import FieldError, card_serial
from app.workflow._common import cfg, changes, not_allowed, record
from app.workflow._tx import step
from models import ENDED, LOA_LEVELS, Issuance, PickupPoint, ReserveCard

MAX_BATCH = 5000
_SPLIT = re.compile(r"[\s,;]+")


def parse_serials(text, field="serials") -> list[str]:
    """Serials typed or scanned one per line (or separated by commas); duplicates dropped. A
    token that is no serial is refused with its line named, every such line at once."""
    serials, wrong = [], []
    for number, line in enumerate(str(text or "").splitlines(), start=1):
        for token in _SPLIT.split(line):
            if not token:
                continue
            try:
                serials.append(card_serial(token, field=field))
            except FieldError:
                wrong.append((number, token))
    if wrong:
        raise FieldError(field, _wrong_lines_message(wrong))
    if not serials:
        raise FieldError(field, _l("Give at least one card serial."))
    return list(dict.fromkeys(serials))


LINES_NAMED = 10


def _wrong_lines_message(wrong) -> str:
    lines = ", ".join(str(_l("line %(number)s (\u201c%(value)s\u201d)")
                          % {"number": number, "value": token[:40]})
                      for number, token in wrong[:LINES_NAMED])
    if len(wrong) > LINES_NAMED:
        lines += " " + str(_l("and %(count)s more") % {"count": len(wrong) - LINES_NAMED})
    return str(_l("A card serial is 6 to 20 digits.")) + " " + str(_l(
        "Wrong: %(lines)s. Correct or remove those lines; nothing is saved until every line "
        "is a serial.") % {"lines": lines})


def serial_range(first, last) -> list[str]:
    """Every serial from `first` to `last`, keeping the width (leading zeros)."""
    first = card_serial(first, field="first")
    last = card_serial(last, field="last")
    if len(first) != len(last) or int(last) < int(first):
        raise FieldError("last", _l("The last serial must be at least the first, with the "
                                    "same number of digits."))
    count = int(last) - int(first) + 1
    if count > MAX_BATCH:
        raise FieldError("last", _l("At most %(max)s envelopes at a time.") % {"max": MAX_BATCH})
    width = len(first)
    return [str(n).zfill(width) for n in range(int(first), int(last) + 1)]


def _pickup_point(pickup_point_id) -> PickupPoint:
    point = db.session.get(PickupPoint, pickup_point_id) if pickup_point_id else None
    if point is None:
        raise NotFound("pickup_point", pickup_point_id)
    return point


def _as_date(value, field) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise FieldError(field, _l("Give a date as YYYY-MM-DD.")) from exc


@step
def register_batch(serials, product_code, loa, expires_on, pickup_point_id) -> int:
    """Register sealed envelopes; every serial is new or nothing is saved."""
    if isinstance(serials, str):
        serials = parse_serials(serials)
    serials = list(dict.fromkeys(card_serial(s, field="serials") for s in serials))
    if not serials:
        raise FieldError("serials", _l("Give at least one card serial."))
    if len(serials) > MAX_BATCH:
        raise FieldError("serials", _l("At most %(max)s envelopes at a time.") % {"max": MAX_BATCH})
    product_code = str(product_code or "").strip()
    if not product_code:
        raise FieldError("product_code", _l("Give the card product."))
    if loa not in LOA_LEVELS:
        raise FieldError("loa", _l("The level of assurance is LOA2 or LOA3."))
    expires_on = _as_date(expires_on, "expires_on")
    if expires_on <= clock.today():
        raise FieldError("expires_on", _l("The card's expiry date must be in the future."))
    if not pickup_point_id:
        raise FieldError("pickup_point_id", _l("Choose the pickup point where the envelopes "
                                               "are kept."))
    point = _pickup_point(pickup_point_id)
    known = db.session.execute(
        select(ReserveCard.serial).where(ReserveCard.serial.in_(serials))
    ).scalars().all()
    if known:
        raise FieldError("serials", _l("Already in the stock: %(serials)s. Remove them from "
                                       "the list; nothing was saved.")
                         % {"serials": ", ".join(sorted(known)[:20])
                            + (" …" if len(known) > 20 else "")})
    now = clock.now()
    db.session.execute(insert(ReserveCard), [
        {"serial": s, "product_code": product_code, "loa": loa, "expires_on": expires_on,
         "status": "in_stock", "pickup_point_id": point.id, "created_at": now}
        for s in serials
    ])
    record("card.register_batch", "pickup_point", point.id, after={
        "serials": serials, "product_code": product_code, "loa": loa, "expires_on": expires_on,
    })
    return len(serials)


def find_card(serial, lock=False) -> ReserveCard:
    query = select(ReserveCard).where(ReserveCard.serial == card_serial(serial))
    if lock:
        query = query.with_for_update(of=ReserveCard)
    card = db.session.execute(
        query.execution_options(populate_existing=True)
    ).unique().scalar_one_or_none()
    if card is None:
        raise NotFound("card", serial)
    return card


def _card_step(card, step_name, allowed):
    if card.status not in allowed:
        raise not_allowed(step_name, card.status)


@step
def move_card(serial, pickup_point_id) -> ReserveCard:
    card = find_card(serial, lock=True)
    _card_step(card, "move_card", ("in_stock", "returned"))
    point = _pickup_point(pickup_point_id)
    before, after = changes(card, pickup_point_id=point.id)
    record("card.move", "card", card.id, before, after)
    return card


def _open_issuance(card) -> Issuance | None:
    return db.session.execute(
        select(Issuance).where(Issuance.card_id == card.id, Issuance.status.not_in(ENDED))
    ).unique().scalar_one_or_none()


@step
def mark_lost(serial, note=None) -> ReserveCard:
    """A card is lost. When it is out on an issuance, that is the issuance's lost step (the
    issuance ends, the certificate is to be blocked, a deviation is filed)."""
    from app.workflow import lifecycle

    card = find_card(serial, lock=True)
    _card_step(card, "mark_lost", ("in_stock", "issued", "returned"))
    issuance = _open_issuance(card) if card.status == "issued" else None
    if issuance is not None:
        lifecycle.report_lost(issuance.id, note)
        return card
    before, after = changes(card, status="lost")
    record("card.lost", "card", card.id, before, {**after, "note": note})
    return card


@step
def restock(serial, pickup_point_id=None) -> ReserveCard:
    """A returned card goes back into the stock (still bound to its first holder)."""
    card = find_card(serial, lock=True)
    _card_step(card, "restock", ("returned",))
    if card.expires_on < clock.today():
        raise refuse("card_expired", serial=card.serial, expires_on=card.expires_on)
    values = {"status": "in_stock"}
    if pickup_point_id:
        values["pickup_point_id"] = _pickup_point(pickup_point_id).id
    before, after = changes(card, **values)
    record("card.restock", "card", card.id, before, after)
    return card


@step
def destroy(serial, note=None) -> ReserveCard:
    card = find_card(serial, lock=True)
    _card_step(card, "destroy", ("in_stock", "returned", "lost"))
    before, after = changes(card, status="destroyed")
    record("card.destroy", "card", card.id, before, {**after, "note": note})
    return card


def lendable_today():
    """The SQL condition for a card that can be lent today: sealed in stock, LOA2, not past its
    own expiry and, with the binding rule on, not bound to a person (a bound card may only go
    back to its first holder, so it is not stock for anyone else)."""
    condition = ((ReserveCard.status == "in_stock") & (ReserveCard.loa == "LOA2")
                 & (ReserveCard.expires_on >= clock.today()))
    if cfg("CARD_BOUND_TO_FIRST_HOLDER"):
        condition = condition & ReserveCard.bound_person_id.is_(None)
    return condition


def stock_summary() -> list[dict]:
    """Per pickup point: the cards that can be lent today ("in_stock", against the minimum
    stock), those of them near their own expiry, the sealed cards past their expiry ("do not
    lend", counted apart), other sealed cards that cannot be lent to just anyone (LOA3, bound to
    a person), cards per status, and the lendable card to hand out first (oldest expiry)."""
    today = clock.today()
    warn_before = today + timedelta(days=cfg("CARD_EXPIRY_WARNING_DAYS"))
    sealed = ReserveCard.status == "in_stock"
    lendable = lendable_today()
    expired = sealed & (ReserveCard.expires_on < today)
    count_if = lambda condition: func.sum(case((condition, 1), else_=0))  # noqa: E731
    rows = db.session.execute(
        select(
            PickupPoint.id, PickupPoint.name, PickupPoint.min_stock, ReserveCard.status,
            func.count(ReserveCard.id), count_if(lendable),
            count_if(lendable & (ReserveCard.expires_on <= warn_before)), count_if(expired),
        )
        .select_from(PickupPoint)
        .outerjoin(ReserveCard, ReserveCard.pickup_point_id == PickupPoint.id)
        .group_by(PickupPoint.id, PickupPoint.name, PickupPoint.min_stock, ReserveCard.status)
        .order_by(PickupPoint.name)
    ).all()
    summary = {}
    for point_id, name, min_stock, status, count, n_lendable, expiring, n_expired in rows:
        entry = summary.setdefault(point_id, {
            "pickup_point_id": point_id, "pickup_point": name, "min_stock": min_stock,
            "counts": {}, "in_stock": 0, "expiring_soon": 0, "expired_in_stock": 0,
            "not_lendable_in_stock": 0, "lend_first": None,
        })
        if status:
            entry["counts"][status] = count
        if status == "in_stock":
            entry["in_stock"] = int(n_lendable or 0)
            entry["expiring_soon"] = int(expiring or 0)
            entry["expired_in_stock"] = int(n_expired or 0)
            entry["not_lendable_in_stock"] = count - entry["in_stock"] - entry["expired_in_stock"]
    for point_id, serial, expires_on in _lend_first():
        if point_id in summary:
            summary[point_id]["lend_first"] = {"serial": serial, "expires_on": expires_on}
    for entry in summary.values():
        entry["below_min_stock"] = entry["in_stock"] < entry["min_stock"]
    return list(summary.values())


def _lend_first():
    """(pickup point, serial, expiry) of each point's lendable card with the oldest expiry."""
    ranked = select(
        ReserveCard.pickup_point_id, ReserveCard.serial, ReserveCard.expires_on,
        func.row_number().over(partition_by=ReserveCard.pickup_point_id,
                               order_by=(ReserveCard.expires_on, ReserveCard.serial)).label("n"),
    ).where(lendable_today()).subquery()
    return db.session.execute(
        select(ranked.c.pickup_point_id, ranked.c.serial, ranked.c.expires_on)
        .where(ranked.c.n == 1)
    ).all()
