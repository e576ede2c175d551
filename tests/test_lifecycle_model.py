"""A model of the routine, checked against the real workflow by random sequences of steps.

The model below is plain Python and knows nothing of the application: who holds which card,
each issuance's status and dates, counted in Swedish days from the routine's numbers. A
Hypothesis state machine drives the real workflow functions with random sequences of steps
(apply, approve, reject, receipt, extend, return, lost, block, the mail steps) and clock jumps
(sweeps at random times, across the changes to and from summer time), and after every step
checks that the workflow and the model agree and that the invariants hold:
- at most one card out per person and one issuance per card;
- no card out past its own expiry date;
- every block for a missing receipt has its deviation;
- a second sweep at the same time changes nothing;
- every status change has its audit row, and the audit chain verifies.

A failing sequence is printed by Hypothesis, step by step. The run is bounded to fit in
`make test`; `LIFECYCLE_MODEL_EXAMPLES` (sequences per database) and `LIFECYCLE_MODEL_STEPS`
(steps per sequence) make it longer, e.g. `LIFECYCLE_MODEL_EXAMPLES=2000`.
"""

import os
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from flask import g
from flask_login import login_user
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import delete, func, insert, select, text, update

from app import audit, clock
from app.errors import RuleViolation
from app.extensions import db
from app.validation import FieldError
from app.workflow import application, approval, lifecycle, mail_flow, sweeps
from models import (
    AuditEvent,
    AuditHead,
    Deviation,
    DeviationNote,
    Extension,
    Issuance,
    IssuanceAttester,
    KobeRecord,
    OutboxMessage,
    Person,
    Receipt,
    ReserveCard,
    SweepRun,
)

EXAMPLES = int(os.environ.get("LIFECYCLE_MODEL_EXAMPLES", "60"))
STEPS = int(os.environ.get("LIFECYCLE_MODEL_STEPS", "20"))
STATS = Counter()  # what the sequences did, printed at the end (pytest -s shows it)

# ---- the routine's numbers (DOMAIN.md defaults) ---------------------------------------------
SWEDEN = ZoneInfo("Europe/Stockholm")
MAX_DAYS = {"forgotten": 10, "lost_stolen_damaged": 30, "awaiting_new_card": 30,
            "temporary_assignment": 100}
REASONS = tuple(MAX_DAYS)
RECEIPT_DAYS, RECEIPT_REMINDER, GRACE, MAIL_RECEIPT_DAYS, WINDOW_MONTHS = 7, 2, 7, 14, 7
EXPIRY_REMINDERS = (7, 3)

# The statuses as the routine reads them.
ENDED = {"returned", "lost"}
NOT_ENDED = {"awaiting_approval", "approved", "extended", "expired", "prepared", "sent",
             "receipt_received", "active", "rejected", "blocked"}
HOLDING = NOT_ENDED - {"prepared"}  # out with the person
RUNNING = {"approved", "extended", "active"}
RECEIPT_DEADLINE = {"awaiting_approval", "approved", "extended", "expired", "rejected"}

# The demo people the model uses: what Kobe says of each.
PEOPLE = {  # name prefix -> (ordinary card, reserve-card order)
    "Anna": ("active", False), "Björn": ("ordered", False), "Cecilia": ("none", True),
    "Lars": ("active", False), "Maria": ("active", False),
}
# Mostly a reason the person's Kobe facts allow, sometimes any.
FITTING = [("Anna", "forgotten"), ("Anna", "lost_stolen_damaged"), ("Björn", "awaiting_new_card"),
           ("Björn", "forgotten"), ("Cecilia", "temporary_assignment"), ("Lars", "forgotten"),
           ("Lars", "lost_stolen_damaged"), ("Maria", "lost_stolen_damaged")]
RECIPIENT_AND_REASON = st.one_of(
    st.sampled_from(FITTING), st.sampled_from(FITTING),
    st.tuples(st.sampled_from(tuple(PEOPLE)), st.sampled_from(tuple(MAX_DAYS))))
CARD_LIFETIMES = (4, 20, 60, 400, 400)  # days from the first day of a sequence
# Sequences start around the changes to summer time (2026-03-29) and back (2026-10-25), near
# midnight Swedish time.
STARTS = (datetime(2026, 3, 27, 22, 30), datetime(2026, 3, 28, 22, 59),
          datetime(2026, 3, 28, 23, 30), datetime(2026, 10, 23, 21, 45),
          datetime(2026, 10, 24, 22, 30), datetime(2026, 6, 10, 8, 0))
JUMPS = (1, 2, 5, 11, 22, 23, 24, 25, 47, 24 * 3, 24 * 6, 24 * 8, 24 * 15, 24 * 40, 24 * 100)


def swedish_day(moment: datetime) -> date:
    return moment.replace(tzinfo=UTC).astimezone(SWEDEN).date()


def plus_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")


# ---- the model -------------------------------------------------------------------------------

@dataclass
class Card:
    serial: str
    expires_on: date
    status: str = "in_stock"
    bound_to: str | None = None


@dataclass
class Lending:
    person: str
    card: int
    channel: str
    reason: str
    status: str
    original_days: int
    valid_until: date | None
    receipt_due: date | None
    issued_on: date | None
    approved: bool = False
    receipt_in: bool = False
    extended: bool = False
    receipt_reminded: bool = False
    expiry_reminded: list = field(default_factory=lambda: [False, False])
    deviations: set = field(default_factory=set)
    history: list = field(default_factory=list)
    db_id: int | None = None

    def set(self, status):
        self.status = status
        self.history.append(status)


class Refused(Exception):
    def __init__(self, outcome):
        self.outcome = outcome


def refuse(rule_code):
    raise Refused(("refused", rule_code))


def field_error(name):
    raise Refused(("field", name))


class Model:
    """The routine on paper."""

    def __init__(self, cards: list[Card]):
        self.cards = cards
        self.lendings: list[Lending] = []

    def holding(self, person, but=None):
        return [x for x in self.lendings if x.person == person and x.status in HOLDING
                and x is not but]

    def _recipient(self, person, reason):
        ordinary, order = PEOPLE[person]
        if self.holding(person):
            refuse("recipient_has_open_issuance")
        if ordinary not in ("active", "ordered") and not order:
            refuse("recipient_no_card_or_order")
        if reason == "awaiting_new_card" and ordinary != "ordered":
            refuse("new_card_not_ordered")
        if reason == "temporary_assignment" and not order:
            refuse("reserve_order_missing")

    def _card(self, index, person, today):
        card = self.cards[index]
        if card.status != "in_stock":
            refuse("card_not_in_stock")
        if card.expires_on < today:
            refuse("card_expired")
        if card.bound_to not in (None, person):
            refuse("card_bound_to_other_person")
        return card

    @staticmethod
    def _end(reason, card, today, offset):
        reason_latest = today + timedelta(days=MAX_DAYS[reason])
        latest = min(reason_latest, card.expires_on)
        end = latest if offset is None else today + timedelta(days=offset)
        if end > reason_latest:
            refuse("validity_too_long")
        if end > latest:
            refuse("validity_past_card_expiry")
        if end <= today:
            if card.expires_on <= today:
                refuse("validity_past_card_expiry")
            field_error("valid_until")
        return end

    def apply(self, person, card_index, reason, offset, assignment, today):
        if reason == "temporary_assignment" and not assignment:
            field_error("assignment")
        self._recipient(person, reason)
        card = self._card(card_index, person, today)
        end = self._end(reason, card, today, offset)
        lending = Lending(person, card_index, "in_person", reason, "awaiting_approval",
                          (end - today).days, end, today + timedelta(days=RECEIPT_DAYS), today)
        lending.history.append("awaiting_approval")
        self._hand_out(card, person)
        self.lendings.append(lending)
        return lending

    def prepare(self, person, card_index, reason, assignment, today):
        if reason == "temporary_assignment" and not assignment:
            field_error("assignment")
        self._recipient(person, reason)
        card = self._card(card_index, person, today)
        end = self._end(reason, card, today, None)
        lending = Lending(person, card_index, "registered_mail", reason, "prepared",
                          (end - today).days, None, None, None)
        lending.history.append("prepared")
        self._hand_out(card, person)
        self.lendings.append(lending)
        return lending

    @staticmethod
    def _hand_out(card, person):
        card.status = "issued"
        card.bound_to = card.bound_to or person

    @staticmethod
    def _from(x, allowed):
        if x.status not in allowed:
            refuse("transition_not_allowed")

    def approve(self, x, today):
        self._from(x, {"awaiting_approval"})
        if x.valid_until < today:
            refuse("transition_not_allowed")
        x.approved = True
        x.set("approved")

    def reject(self, x, today):
        self._from(x, {"awaiting_approval"})
        x.set("rejected")

    def register_receipt(self, x, today):
        self._from(x, RECEIPT_DEADLINE | {"blocked"})
        if x.receipt_in:
            refuse("transition_not_allowed")
        x.receipt_in = True

    def block(self, x, today):
        self._from(x, NOT_ENDED - {"blocked", "prepared"})
        x.set("blocked")

    def extend(self, x, today):
        if x.extended:
            refuse("extension_already_used")
        if x.status not in {"approved", "active", "expired"} or not x.approved:
            refuse("extension_not_allowed")
        if today > plus_months(x.issued_on, WINDOW_MONTHS):
            refuse("extension_window_passed")
        start = max(x.valid_until, today)
        end = min(start + timedelta(days=x.original_days), self.cards[x.card].expires_on)
        if end <= start:
            refuse("validity_past_card_expiry")
        x.extended = True
        x.valid_until = end
        x.expiry_reminded = [False, False]
        x.set("extended" if x.channel == "in_person" else "active")

    def return_card(self, x, today, then):
        self._from(x, NOT_ENDED)
        card = self.cards[x.card]
        if then == "restock" and card.expires_on < today:
            refuse("card_expired")
        x.set("returned")
        card.status = {"restock": "in_stock", "destroy": "destroyed"}.get(then, "returned")

    def report_lost(self, x, today):
        self._from(x, NOT_ENDED)
        x.set("lost")
        self.cards[x.card].status = "lost"
        x.deviations.add("card_lost")

    def dispatched(self, x, today):
        self._from(x, {"prepared"})
        if self.holding(x.person, but=x):
            refuse("recipient_has_open_issuance")
        x.receipt_due = today + timedelta(days=MAIL_RECEIPT_DAYS)
        x.set("sent")

    def receipt_returned(self, x, today):
        self._from(x, {"sent"})
        x.receipt_in = True
        x.set("receipt_received")

    def certificate_issued(self, x, today):
        self._from(x, {"receipt_received"})
        end = min(today + timedelta(days=x.original_days), self.cards[x.card].expires_on)
        if end <= today:
            refuse("validity_past_card_expiry")
        x.approved = True
        x.issued_on, x.valid_until = today, end
        x.set("active")

    def sweep(self, today) -> dict:
        """Every deadline as of `today`, in the order the routine's sweeps run."""
        counts = dict.fromkeys(("receipts_blocked", "receipt_reminders",
                                "expiry_reminders_first", "expiry_reminders_second", "expired",
                                "not_returned", "return_requests_ordinary_card",
                                "mail_receipts_overdue"), 0)
        in_person = [x for x in self.lendings if x.channel == "in_person"]
        for x in in_person:
            if x.status in RECEIPT_DEADLINE and not x.receipt_in and x.receipt_due < today:
                x.set("blocked")
                x.deviations.add("receipt_missing_blocked")
                counts["receipts_blocked"] += 1
        for x in in_person:
            if (x.status in RECEIPT_DEADLINE and not x.receipt_in and not x.receipt_reminded
                    and today <= x.receipt_due <= today + timedelta(days=RECEIPT_REMINDER)):
                x.receipt_reminded = True
                counts["receipt_reminders"] += 1
        first, second = EXPIRY_REMINDERS
        for x in self.lendings:
            if (x.status in RUNNING and not x.expiry_reminded[0]
                    and today + timedelta(days=second) < x.valid_until
                    <= today + timedelta(days=first)):
                x.expiry_reminded[0] = True
                counts["expiry_reminders_first"] += 1
        for x in self.lendings:
            if (x.status in RUNNING and not x.expiry_reminded[1]
                    and today <= x.valid_until <= today + timedelta(days=second)):
                x.expiry_reminded[1] = True
                counts["expiry_reminders_second"] += 1
        for x in self.lendings:
            if x.status in {"awaiting_approval", *RUNNING} and x.valid_until < today:
                x.set("expired")
                counts["expired"] += 1
        for x in self.lendings:
            if (x.status in HOLDING and x.valid_until is not None
                    and x.valid_until < today - timedelta(days=GRACE)
                    and "not_returned" not in x.deviations):
                x.deviations.add("not_returned")
                counts["not_returned"] += 1
        for x in self.lendings:
            if (x.channel == "registered_mail" and x.status == "sent" and not x.receipt_in
                    and x.receipt_due < today and "mail_receipt_not_returned" not in x.deviations):
                x.deviations.add("mail_receipt_not_returned")
                counts["mail_receipts_overdue"] += 1
        return counts


# ---- the state machine -----------------------------------------------------------------------

# The statuses each step is meant for (the model decides what really happens).
FITS = {"approve": {"awaiting_approval"}, "reject": {"awaiting_approval"},
        "register_receipt": RECEIPT_DEADLINE | {"blocked"}, "extend": {"approved", "active",
                                                                        "expired"},
        "dispatched": {"prepared"}, "receipt_returned": {"sent"},
        "certificate_issued": {"receipt_received"}}
USERS = ("intygsgivare1", "televaxeln", "servicecenter", "korthandlaggare")
TABLES_EMPTY_AT_START = (Extension, IssuanceAttester, Receipt, DeviationNote, Deviation,
                         OutboxMessage, SweepRun, Issuance)


class Lifecycle(RuleBasedStateMachine):
    """Drives the real workflow; the model says what must happen."""

    app = None  # set by the test
    baseline = None

    def __init__(self):
        super().__init__()
        self.now = None
        self.model = None

    # -- plumbing --

    @contextmanager
    def acting(self, username):
        user = self.app.appbuilder.sm.find_user(username=username)
        with self.app.test_request_context():
            login_user(user)
            yield
        g.pop("_login_user", None)

    def today(self):
        return swedish_day(self.now)

    def person(self, prefix) -> Person:
        return db.session.get(Person, self.baseline["people"][prefix])

    def run(self, username, call):
        """The real step's outcome: ("ok", value), ("refused", rule) or ("field", name)."""
        with self.acting(username):
            try:
                return "ok", call()
            except RuleViolation as exc:
                return ("refused", exc.rule), None
            except FieldError as exc:
                return ("field", exc.field), None

    def expect(self, what, username, model_step, real_step):
        try:
            model_step()
            expected = "ok"
        except Refused as refused:
            expected = refused.outcome
        outcome, value = self.run(username, real_step)
        if isinstance(outcome, tuple):
            actual = outcome
        else:
            actual = "ok"
        assert actual == expected, f"{what}: the workflow gave {actual}, the model {expected}"
        STATS[f"{what.split()[0]}: {actual}"] += 1
        return value

    def pick(self, index, fits=()) -> Lending:
        """Mostly an issuance the step fits, else one that has not ended, sometimes any (the
        refusals are checked too)."""
        for candidates, share in (([x for x in self.model.lendings if x.status in fits], 4),
                                  ([x for x in self.model.lendings if x.status not in ENDED],
                                   2)):
            if candidates and index % 6 < share:
                return candidates[index % len(candidates)]
        return self.model.lendings[index % len(self.model.lendings)]

    # -- the start of a sequence: a clean database and a clock --

    @initialize(start=st.sampled_from(STARTS), hours=st.integers(0, 30),
                first=st.sampled_from(FITTING), card=st.integers(2, len(CARD_LIFETIMES) - 1))
    def start(self, start, hours, first, card):
        reset_database(self.baseline)
        self.now = start + timedelta(hours=hours)
        clock.set_now(self.now)
        first_day = self.today()
        cards = []
        for serial, days in zip(self.baseline["cards"], CARD_LIFETIMES, strict=True):
            cards.append(Card(serial, first_day + timedelta(days=days)))
            db.session.execute(update(ReserveCard).where(ReserveCard.serial == serial)
                               .values(expires_on=first_day + timedelta(days=days)))
        db.session.commit()
        self.model = Model(cards)
        self.apply(first, card, None, True)  # a sequence starts with a card out

    @rule(who=RECIPIENT_AND_REASON, card=st.integers(0, len(CARD_LIFETIMES) - 1),
          offset=st.sampled_from((None, 1, 3, 8)))
    def apply_again(self, who, card, offset):
        """Another application (applications are where every life starts)."""
        self.apply(who, card, offset, True)

    # -- the steps --

    @rule(who=RECIPIENT_AND_REASON, card=st.integers(0, len(CARD_LIFETIMES) - 1),
          offset=st.sampled_from((None, None, None, 1, 3, 8, 12, 31, 101)),
          assignment=st.sampled_from((True, True, True, False)))
    def apply_in_person(self, who, card, offset, assignment):
        self.apply(who, card, offset, assignment)

    def apply(self, who, card, offset, assignment):
        person, reason = who
        today = self.today()
        made = []

        def model_step():
            made.append(self.model.apply(person, card, reason, offset, assignment, today))

        def real_step():
            attesters = [application.Attestation(self.person("Gustav"), clock.now()),
                         application.Attestation(self.person("Helena"), clock.now())]
            return application.apply_in_person(
                self.model.cards[card].serial, self.person(person).hsa_id, reason, attesters,
                True, True, valid_until=today + timedelta(days=offset) if offset else None,
                assignment="Vikariat på akuten" if assignment else None).id

        issuance_id = self.expect(f"apply {person} {reason}", "intygsgivare1", model_step,
                                  real_step)
        if made:
            made[0].db_id = issuance_id

    @rule(who=RECIPIENT_AND_REASON, card=st.integers(0, len(CARD_LIFETIMES) - 1),
          assignment=st.sampled_from((True, True, True, False)))
    def prepare_mail(self, who, card, assignment):
        person, reason = who
        today = self.today()
        made = []

        def model_step():
            made.append(self.model.prepare(person, card, reason, assignment, today))

        def real_step():
            return mail_flow.prepare(
                self.model.cards[card].serial, self.person(person).hsa_id, reason,
                "Storgatan 1, 432 44 Varberg", "Arbetar på distans",
                assignment="Vikariat" if assignment else None).id

        issuance_id = self.expect(f"prepare {person} {reason}", "korthandlaggare", model_step,
                                  real_step)
        if made:
            made[0].db_id = issuance_id

    def _step(self, name, index, username, real, *extra):
        x = self.pick(index, FITS.get(name, ()))
        today = self.today()
        self.expect(f"{name} #{x.db_id} ({x.status})", username,
                    lambda: getattr(self.model, name)(x, today, *extra),
                    lambda: real(x.db_id, *extra))

    @precondition(lambda self: self.model.lendings)
    @rule(index=st.integers(0, 59))
    def approve(self, index):
        checks = {k: True for k in ("identity", "reason", "card", "attesters", "card_or_order",
                                    "reserve_order")}
        self._step("approve", index, "televaxeln",
                   lambda i: approval.approve(i, "KOBE-4711", checks))

    @precondition(lambda self: self.model.lendings)
    @rule(index=st.integers(0, 59))
    def reject(self, index):
        self._step("reject", index, "televaxeln", lambda i: approval.reject(i, "Fel i Kobe"))

    @precondition(lambda self: self.model.lendings)
    @rule(index=st.integers(0, 59))
    def register_receipt(self, index):
        self._step("register_receipt", index, "servicecenter", lifecycle.register_receipt)

    @precondition(lambda self: self.model.lendings)
    @rule(index=st.integers(0, 59))
    def block(self, index):
        self._step("block", index, "servicecenter", lambda i: lifecycle.block(i, "Spärras"))

    @precondition(lambda self: self.model.lendings)
    @rule(index=st.integers(0, 59))
    def extend(self, index):
        self._step("extend", index, "servicecenter", lifecycle.extend)

    @precondition(lambda self: self.model.lendings)
    @rule(index=st.integers(0, 59), then=st.sampled_from((None, "restock", "destroy")))
    def return_card(self, index, then):
        self._step("return_card", index, "servicecenter", lifecycle.return_card, then)

    @precondition(lambda self: self.model.lendings)
    @rule(index=st.integers(0, 59))
    def report_lost(self, index):
        self._step("report_lost", index, "servicecenter",
                   lambda i: lifecycle.report_lost(i, "Borttappat"))

    @precondition(lambda self: self.model.lendings)
    @rule(index=st.integers(0, 59))
    def dispatched(self, index):
        self._step("dispatched", index, "korthandlaggare",
                   lambda i: mail_flow.dispatched(i, "RR123456785SE"))

    @precondition(lambda self: self.model.lendings)
    @rule(index=st.integers(0, 59))
    def receipt_returned(self, index):
        self._step("receipt_returned", index, "korthandlaggare", mail_flow.receipt_returned)

    @precondition(lambda self: self.model.lendings)
    @rule(index=st.integers(0, 59))
    def certificate_issued(self, index):
        self._step("certificate_issued", index, "korthandlaggare",
                   mail_flow.certificate_issued)

    @rule(hours=st.sampled_from(JUMPS), minutes=st.integers(0, 59))
    def time_passes(self, hours, minutes):
        self.now += timedelta(hours=hours, minutes=minutes)
        clock.set_now(self.now)
        STATS["time passes"] += 1

    @rule(hours=st.sampled_from(JUMPS), minutes=st.integers(0, 59))
    def days_pass_and_sweep(self, hours, minutes):
        self.sweep(hours, minutes)

    @rule(hours=st.sampled_from((0, 0, 1, 3, 24, 24 * 7)), minutes=st.integers(0, 59))
    def sweep(self, hours, minutes):
        """The clock moves on (maybe) and the sweeps run; a second run changes nothing."""
        self.now += timedelta(hours=hours, minutes=minutes)
        clock.set_now(self.now)
        expected = self.model.sweep(self.today())
        STATS["sweep: ran"] += 1
        first = sweeps.run_all(self.now)
        assert first == expected, f"sweep on {self.today()}: {first} != model {expected}"
        second = sweeps.run_all(self.now)
        assert not any(second.values()), f"the second sweep changed {second}"
        for name, changed in first.items():
            if changed:
                STATS[f"sweep: {name}"] += 1

    # -- after every step --

    @invariant()
    def workflow_and_model_agree(self):
        if self.model is None:
            return
        db.session.expire_all()
        rows = {row.id: row for row in db.session.execute(
            select(Issuance)).unique().scalars()}
        assert set(rows) == {x.db_id for x in self.model.lendings}
        deviations = {}
        for issuance_id, kind in db.session.execute(
                select(Deviation.issuance_id, Deviation.type)):
            deviations.setdefault(issuance_id, set()).add(kind)
        for x in self.model.lendings:
            real = rows[x.db_id]
            seen = (real.status, real.valid_until, real.receipt_due, real.card.status,
                    real.extension is not None, deviations.get(x.db_id, set()),
                    real.receipt.received_at is not None)
            wanted = (x.status, x.valid_until, x.receipt_due, self.model.cards[x.card].status,
                      x.extended, x.deviations, x.receipt_in)
            assert seen == wanted, f"issuance {x.db_id}: workflow {seen}, model {wanted}"
        for card in self.model.cards:
            real = db.session.execute(
                select(ReserveCard).where(ReserveCard.serial == card.serial)).scalar_one()
            bound = real.bound_person.name.split()[0] if real.bound_person else None
            assert (real.status, bound) == (card.status, card.bound_to), card.serial

    @invariant()
    def one_card_out_per_person_and_per_card(self):
        if self.model is None:
            return
        per_person = db.session.execute(
            select(Issuance.recipient_id, func.count()).where(Issuance.status.in_(HOLDING))
            .group_by(Issuance.recipient_id).having(func.count() > 1)).all()
        per_card = db.session.execute(
            select(Issuance.card_id, func.count()).where(Issuance.status.in_(NOT_ENDED))
            .group_by(Issuance.card_id).having(func.count() > 1)).all()
        assert not per_person and not per_card, (per_person, per_card)

    @invariant()
    def no_card_out_past_its_own_expiry(self):
        if self.model is None:
            return
        past = db.session.execute(
            select(Issuance.id).join(ReserveCard, ReserveCard.id == Issuance.card_id)
            .where(Issuance.status.in_(NOT_ENDED), Issuance.valid_until > ReserveCard.expires_on)
        ).all()
        assert not past, past

    @invariant()
    def every_block_for_a_missing_receipt_has_its_deviation(self):
        if self.model is None:
            return
        blocked = set(db.session.execute(select(Issuance.id).where(
            Issuance.block_reason == sweeps.BLOCK_REASON)).scalars())
        filed = set(db.session.execute(select(Deviation.issuance_id).where(
            Deviation.type == "receipt_missing_blocked")).scalars())
        assert blocked == filed, (blocked, filed)

    @invariant()
    def every_status_change_has_its_audit_row_and_the_chain_verifies(self):
        if self.model is None:
            return
        statuses = {}
        for entity_id, after in db.session.execute(
                select(AuditEvent.entity_id, AuditEvent.after)
                .where(AuditEvent.entity == "issuance").order_by(AuditEvent.id)):
            if isinstance(after, dict) and "status" in after:
                statuses.setdefault(entity_id, []).append(after["status"])
        for x in self.model.lendings:
            assert statuses.get(x.db_id) == x.history, (x.db_id, statuses.get(x.db_id),
                                                        x.history)
        verified = audit.verify()
        assert verified.ok, verified["breaks"]


# ---- a clean database per sequence, cheaply --------------------------------------------------

def take_baseline() -> dict:
    """What the sequences start from: the demo people and five unused cards."""
    people = {prefix: db.session.execute(select(Person.id).where(Person.name.like(f"{prefix}%")))
              .scalar_one() for prefix in (*PEOPLE, "Gustav", "Helena")}
    serials = list(db.session.execute(
        select(ReserveCard.serial).where(ReserveCard.status == "in_stock",
                                         ReserveCard.loa == "LOA2",
                                         ReserveCard.bound_person_id.is_(None))
        .order_by(ReserveCard.id).limit(len(CARD_LIFETIMES))).scalars())
    for model in TABLES_EMPTY_AT_START:
        assert not db.session.execute(select(func.count()).select_from(model)).scalar()
    # Kobe: the ordinary cards have been as they are since long before any sequence starts
    db.session.execute(update(KobeRecord).values(updated_at=datetime(2025, 1, 1),
                                                 ordinary_card_since=datetime(2025, 1, 1)))
    db.session.commit()
    last_audit = db.session.execute(select(func.max(AuditEvent.id))).scalar() or 0
    head = db.session.execute(select(AuditHead.seq, AuditHead.head_hash, AuditHead.mac)).first()
    return {"people": people, "cards": serials, "last_audit": last_audit,
            "audit_head": dict(head._mapping) if head else None}


def reset_database(baseline) -> None:
    """Undo a sequence: the demo database had no issuances, deviations, mail or sweep runs;
    the audit rows written since are the chain's tail; the cards go back to the stock."""
    clock.set_now(None)
    db.session.rollback()
    for model in TABLES_EMPTY_AT_START:
        db.session.execute(delete(model))
    if db.session.get_bind().dialect.name == "postgresql":
        # The audit table refuses DELETE (its append-only trigger); the test, as the
        # database's owner, lifts triggers for this one transaction to undo the sequence.
        db.session.execute(text("SET LOCAL session_replication_role = replica"))
    db.session.execute(delete(AuditEvent).where(AuditEvent.id > baseline["last_audit"]))
    # The chain head goes back with the tail (a real cut would be caught by audit-verify).
    db.session.execute(delete(AuditHead))
    if baseline["audit_head"]:
        db.session.execute(insert(AuditHead).values(id=audit.HEAD_ID, **baseline["audit_head"]))
    db.session.execute(update(ReserveCard).where(ReserveCard.serial.in_(baseline["cards"]))
                       .values(status="in_stock", bound_person_id=None))
    db.session.commit()
    db.session.expire_all()


@pytest.mark.both_databases
def test_the_workflow_follows_the_model_of_the_routine(app, dialect):
    for key, value in (("REASON_MAX_DAYS", MAX_DAYS), ("RECEIPT_DUE_DAYS", RECEIPT_DAYS),
                       ("RECEIPT_REMINDER_DAYS_BEFORE", RECEIPT_REMINDER),
                       ("RETURN_GRACE_DAYS", GRACE), ("MAIL_RECEIPT_DUE_DAYS", MAIL_RECEIPT_DAYS),
                       ("EXTENSION_WINDOW_MONTHS", WINDOW_MONTHS),
                       ("EXPIRY_REMINDER_DAYS_BEFORE", EXPIRY_REMINDERS),
                       ("DEFAULT_ATTESTERS_REQUIRED", 2), ("CARD_BOUND_TO_FIRST_HOLDER", True)):
        assert app.config[key] == value, key  # the model is written for the defaults
    Lifecycle.app = app
    Lifecycle.baseline = take_baseline()
    # PostgreSQL is slower per step: half the sequences there, the same kind of sequence
    examples = EXAMPLES if dialect == "sqlite" else max(EXAMPLES // 2, 1)
    try:
        run_state_machine_as_test(Lifecycle, settings=settings(
            max_examples=examples, stateful_step_count=STEPS, deadline=None, database=None,
            print_blob=True, suppress_health_check=list(HealthCheck)))
    finally:
        print("\n".join(f"{count:6d}  {what}" for what, count in sorted(STATS.items())))
        STATS.clear()
        reset_database(Lifecycle.baseline)
        Lifecycle.app = Lifecycle.baseline = None
