"""The in-person application: every rule code with a case that triggers it and one just inside.

Refusals change nothing, so each table runs in one test (one database set-up per table)."""

from datetime import date, timedelta

import pytest

from app import clock
from app.errors import RuleViolation
from app.validation import FieldError
from app.workflow import application, lifecycle
from models import Issuance, OrganisationType, Receipt, ReserveCard
from tests.workflow_support import apply, attestations, free_cards, mails, person

TODAY = date(2026, 3, 2)


@pytest.fixture(autouse=True)
def _frozen(set_now):
    set_now(TODAY)


def refused(rule, call, case=""):
    with pytest.raises(RuleViolation) as caught:
        call()
    assert caught.value.rule == rule, f"{case}: {caught.value}"
    assert caught.value.message and "%(" not in caught.value.message
    return caught.value


def _card(session, serial):
    return session.query(ReserveCard).filter_by(serial=serial).one()


@pytest.mark.both_databases
def test_application_completes_awaiting_approval(app, as_user, session):
    serial = free_cards(1)[0]
    issuance = apply(as_user, serial=serial)
    assert issuance.status == "awaiting_approval"
    assert issuance.channel == "in_person"
    assert issuance.issued_at == clock.now()
    assert issuance.valid_until == TODAY + timedelta(days=10)  # default: the maximum
    assert issuance.original_days == 10
    assert issuance.receipt_due == TODAY + timedelta(days=7)
    receipt = session.get(Receipt, issuance.receipt.id)
    assert (receipt.kind, receipt.due_on, receipt.received_at) == (
        "application", TODAY + timedelta(days=7), None)
    assert [a.person.name for a in issuance.attesters] == ["Gustav Gran", "Helena Håkansson"]
    assert all(a.user_id for a in issuance.attesters)
    card = session.get(ReserveCard, issuance.card_id)
    assert card.status == "issued" and card.bound_person_id == person("Anna").id
    completed = mails("application_completed", issuance.id)[0]
    assert set(completed.to_addrs.split(", ")) == {"person1@example.se", "person7@example.se",
                                                   "person8@example.se"}
    assert "senast 2026-03-09" in completed.body_text
    notice = mails("approval_requested", issuance.id)[0]
    assert notice.to_addrs == app.config["TELEVAXELN_MAILBOX"]


def test_validity_limits(app, as_user):
    refused("validity_too_long", lambda: apply(as_user, valid_until=TODAY + timedelta(days=11)))
    for reason, days in [("lost_stolen_damaged", 30), ("awaiting_new_card", 30),
                         ("temporary_assignment", 100)]:
        assert application.max_valid_until(reason) == TODAY + timedelta(days=days)
        assert application.check_validity(reason, TODAY + timedelta(days=days)) == (
            TODAY + timedelta(days=days))
        refused("validity_too_long",
                lambda r=reason, d=days: application.check_validity(r, TODAY + timedelta(d + 1)))
    for end in (TODAY, TODAY - timedelta(days=1), "not a date"):
        with pytest.raises(FieldError) as caught:
            application.check_validity("forgotten", end)
        assert caught.value.field == "valid_until"
    issuance = apply(as_user, valid_until=(TODAY + timedelta(days=10)).isoformat())
    assert (issuance.valid_until, issuance.original_days) == (TODAY + timedelta(days=10), 10)
    shorter = apply(as_user, recipient="Björn", reason="awaiting_new_card",
                    valid_until=TODAY + timedelta(days=3))
    assert (shorter.valid_until, shorter.original_days) == (TODAY + timedelta(days=3), 3)


RECIPIENT_REFUSALS = [
    ("recipient_protected_identity", "Eva", "forgotten"),
    ("recipient_no_personal_number", "Fredrik", "forgotten"),
    ("recipient_no_card_or_order", "David", "forgotten"),
    ("recipient_no_card_or_order", "Johan", "lost_stolen_damaged"),
    ("new_card_not_ordered", "Anna", "awaiting_new_card"),
    ("reserve_order_missing", "Björn", "temporary_assignment"),
]
RECIPIENT_ACCEPTED = [
    ("Björn", "awaiting_new_card"),       # an ordered ordinary card
    ("Cecilia", "temporary_assignment"),  # only a reserve-card order
    ("Anna", "lost_stolen_damaged"),      # an active ordinary card
]


def test_recipient_rules(app, as_user, session):
    for rule, recipient, reason in RECIPIENT_REFUSALS:
        refused(rule, lambda p=recipient, r=reason: apply(as_user, recipient=p, reason=r),
                case=recipient)
    assert session.query(Issuance).count() == 0
    for recipient, reason in RECIPIENT_ACCEPTED:
        assert apply(as_user, recipient=recipient, reason=reason).status == "awaiting_approval"
    with as_user("intygsgivare1"):
        error = refused("recipient_unknown", lambda: application.apply_in_person(
            free_cards(1)[0], "SE2321000131-E999999999999", "forgotten",
            attestations(["Helena"]), True, True))
    assert error.field == "recipient_hsa_id"
    assert application.find_recipient("19800101-1231").name == "Anna Åkesson"
    with pytest.raises(FieldError) as caught:
        apply(as_user, recipient="Karin", reason="borrowed")
    assert caught.value.field == "reason"


def test_one_open_reserve_card_per_person(app, as_user):
    first = apply(as_user)
    refused("recipient_has_open_issuance", lambda: apply(as_user))
    facts = application.recipient_facts(person("Anna"))
    assert facts["open_issuance_id"] == first.id
    with as_user("servicecenter"):
        lifecycle.block(first.id, "Kortet borttappat")
    # a blocked card is still out with the person until it comes back or is reported lost
    refused("recipient_has_open_issuance", lambda: apply(as_user))
    with as_user("servicecenter"):
        lifecycle.report_lost(first.id, "Tappat på tåget")
    second = apply(as_user)
    with as_user("servicecenter"):
        lifecycle.return_card(second.id, then="restock")
    assert apply(as_user).status == "awaiting_approval"


ATTESTER_REFUSALS = [
    ("attesters_too_few", ()),
    ("attesters_not_distinct", ("Gustav",)),
    ("attester_is_recipient", ("Anna",)),
    ("attester_without_valid_card", ("Johan",)),
    ("attester_not_eligible", ("Ingrid",)),
]


def test_attester_rules(app, as_user, session):
    for rule, attesters in ATTESTER_REFUSALS:
        refused(rule, lambda a=attesters: apply(as_user, attesters=a), case=rule)
    assert application.authenticate_attester(
        "intygsgivare2", "Reservkort-demo-2026").name == "Helena Håkansson"
    refused("attesters_too_few",
            lambda: application.authenticate_attester("intygsgivare2", "wrong"))
    refused("attesters_too_few",  # a login without a person cannot attest
            lambda: application.authenticate_attester("admin", "Reservkort-demo-2026"))
    # Just inside: another valid attester than the demo pair; then one attester where the
    # organisation type allows one.
    assert apply(as_user, attesters=("Maria",)).status == "awaiting_approval"
    for org in session.query(OrganisationType):
        org.attesters_required = 1
    session.commit()
    lone = apply(as_user, recipient="Björn", reason="awaiting_new_card", attesters=())
    assert [a.person.name for a in lone.attesters] == ["Gustav Gran"]


def test_card_rules(app, as_user, session):
    refused("card_unknown", lambda: apply(as_user, serial="1234567890"))
    refused("card_not_loa2", lambda: apply(as_user, serial=free_cards(1, loa="LOA3")[0]))
    expiring, *others = free_cards(4)
    for serial, status in zip(others, ("issued", "lost", "destroyed"), strict=True):
        _card(session, serial).status = status
    card = _card(session, expiring)
    card.expires_on = TODAY - timedelta(days=1)
    session.commit()
    refused("card_expired", lambda: apply(as_user, serial=expiring))
    for serial in others:
        refused("card_not_in_stock", lambda s=serial: apply(as_user, serial=s))
    card.expires_on = TODAY  # expires today: no end date after today fits before its expiry
    session.commit()
    refused("validity_past_card_expiry", lambda: apply(as_user, serial=expiring))
    card.expires_on = TODAY + timedelta(days=1)  # the end date defaults to the card's expiry
    session.commit()
    issued = apply(as_user, serial=expiring)
    assert issued.card.serial == expiring and issued.valid_until == TODAY + timedelta(days=1)


def test_card_bound_to_first_holder(app, as_user):
    first = apply(as_user, recipient="Anna")
    serial = first.card.serial
    with as_user("servicecenter"):
        lifecycle.return_card(first.id, then="restock")
    refused("card_bound_to_other_person",
            lambda: apply(as_user, recipient="Björn", reason="awaiting_new_card", serial=serial))
    again = apply(as_user, recipient="Anna", serial=serial)
    assert again.card.bound_person_id == person("Anna").id
    with as_user("servicecenter"):
        lifecycle.return_card(again.id, then="restock")
    app.config["CARD_BOUND_TO_FIRST_HOLDER"] = False
    other = apply(as_user, recipient="Björn", reason="awaiting_new_card", serial=serial)
    assert other.status == "awaiting_approval"


def test_presence_and_sealed_envelope_confirmed(app, as_user, session):
    for field in ("recipient_present", "envelope_unopened"):
        with pytest.raises(FieldError) as caught:
            apply(as_user, **{field: False})
        assert caught.value.field == field
    assert session.query(Issuance).count() == 0
    assert free_cards(50)  # nothing was taken from the stock
