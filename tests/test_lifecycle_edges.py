"""The card's whole life, second reading: each edge of the routine that the first version read too
narrowly, held by one example (DOMAIN.md, "Second reading: the card's whole life")."""

import logging
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from app import clock
from app.errors import RuleViolation
from app.extensions import db
from app.validation import FieldError
from app.workflow import application, approval, kobe, lifecycle, mail_flow, queries, stock, sweeps
from models import Deviation, Issuance, ReserveCard
from tests.workflow_support import (
    ALL_CHECKS,
    apply,
    approve,
    at,
    attestations,
    audit_actions,
    count,
    free_cards,
    mails,
    person,
)

D = date(2026, 3, 2)  # a Monday, well before the change to summer time
PASSWORD = "Reservkort-demo-2026"


def day(n):
    return D + timedelta(days=n)


def rule_of(call):
    with pytest.raises(RuleViolation) as caught:
        call()
    return caught.value.rule


def reload(issuance_id) -> Issuance:
    db.session.expire_all()
    return db.session.get(Issuance, issuance_id)


def card_expiring(on: date) -> str:
    serial = free_cards(1)[0]
    db.session.execute(ReserveCard.__table__.update().where(ReserveCard.serial == serial)
                       .values(expires_on=on))
    db.session.commit()
    return serial


# --- the receipt deadline holds whatever happens to the validity ------------------------------

@pytest.mark.both_databases
def test_short_validity_expires_first_and_is_still_blocked_for_its_receipt(app, as_user, set_now):
    set_now(at(D))
    issuance = apply(as_user, valid_until=day(3))  # receipt due D+7, validity over after D+3
    approve(as_user, issuance.id)
    assert sweeps.run_all(at(day(4), hour=3))["expired"] == 1
    assert reload(issuance.id).status == "expired"
    # the reminder two days before the deadline still goes out ...
    assert sweeps.run_all(at(day(5), hour=3))["receipt_reminders"] == 1
    assert len(mails("receipt_reminder", issuance.id)) == 1
    # ... Servicecenter's receipts desk still lists it ...
    rows = db.session.execute(queries.receipts_due(at(day(5)))).all()
    assert [(row[0].id, int(row[1])) for row in rows] == [(issuance.id, 2)]
    assert queries.dashboard_counts(at(day(5)))["receipts_due"] == 1
    # ... and the missed deadline blocks it, with its deviation
    assert sweeps.run_all(at(day(8), hour=3))["receipts_blocked"] == 1
    blocked = reload(issuance.id)
    assert blocked.status == "blocked" and blocked.block_reason == sweeps.BLOCK_REASON
    assert count(Deviation, Deviation.issuance_id == issuance.id,
                 Deviation.type == "receipt_missing_blocked") == 1


def test_receipt_of_an_expired_card_can_still_be_registered(app, as_user, set_now):
    set_now(at(D))
    issuance = apply(as_user, valid_until=day(2))
    approve(as_user, issuance.id)
    sweeps.run_all(at(day(3)))
    set_now(at(day(4)))
    with as_user("servicecenter"):
        lifecycle.register_receipt(issuance.id)
    assert sweeps.run_all(at(day(8)))["receipts_blocked"] == 0


# --- the lost card ----------------------------------------------------------------------------

@pytest.fixture
def api(client, api_headers):
    from tests.test_api_flows import Api

    return Api(client, api_headers)


def test_lost_card_through_the_api_ends_the_issuance_and_frees_the_person(
        app, api, as_user, set_now):
    set_now(at(D))
    issuance = apply(as_user)
    approve(as_user, issuance.id)
    path = f"/issuances/{issuance.id}/lost"
    no_note = api.post("Servicecenter", path, {})
    assert no_note.status_code == 400 and "note" in no_note.get_json()["errors"]
    assert api.post("Intygsgivare", path, {"note": "x"}).status_code == 403
    answer = api.ok(api.post("Korthandläggare", path, {"note": "Tappade kortet på bussen"}))
    assert answer["status"] == "lost"
    lost = reload(issuance.id)
    handler = app.appbuilder.sm.find_user(username="korthandlaggare")
    assert lost.card.status == "lost" and lost.lost_note == "Tappade kortet på bussen"
    assert lost.lost_by_user_id == handler.id and lost.lost_at == at(D)
    assert lost.certificate_block_requested_by_user_id == handler.id
    assert lost.certificate_block_requested_at == at(D)
    deviation = db.session.execute(
        select(Deviation).where(Deviation.issuance_id == issuance.id)).scalar_one()
    assert deviation.type == "card_lost" and deviation.unit_id == person("Anna").unit_id
    assert audit_actions(issuance.id)[-1] == "issuance.lost"
    detail = api.ok(api.get("Servicecenter", f"/issuances/{issuance.id}"))
    assert detail["certificate_block_requested_at"] and detail["lost_note"]
    # the issuance has ended: not again, and no not-returned deviation follows
    assert api.post("Servicecenter", path, {"note": "igen"}).status_code == 422
    sweeps.run_all(at(day(40)))
    assert count(Deviation, Deviation.issuance_id == issuance.id) == 1
    # the person may be given another card at once
    set_now(at(day(40)))
    assert apply(as_user).status == "awaiting_approval"


def test_lost_card_on_the_screen_needs_confirmation(app, login, as_user, set_now):
    set_now(at(D))
    issuance = apply(as_user)
    servicecenter = login("Servicecenter")
    page = servicecenter.get(f"/issuances/show/{issuance.id}").get_data(as_text=True)
    assert f"/issuances/{issuance.id}/lost" in page
    unconfirmed = servicecenter.post(f"/issuances/{issuance.id}/lost", data={"note": "Borta"})
    assert unconfirmed.status_code == 302 and reload(issuance.id).status == "awaiting_approval"
    servicecenter.post(f"/issuances/{issuance.id}/lost", data={"note": "Borta", "confirm": "1"})
    assert reload(issuance.id).status == "lost"


def test_marking_an_issued_card_lost_in_the_stock_is_the_lost_step(app, as_user, set_now):
    set_now(at(D))
    issuance = apply(as_user)
    with as_user("servicecenter"):
        stock.mark_lost(issuance.card.serial, "Försvann vid utlämningen")
    lost = reload(issuance.id)
    assert lost.status == "lost" and lost.certificate_block_requested_at is not None
    assert apply(as_user).status == "awaiting_approval"


# --- validity that ends before approval -------------------------------------------------------

@pytest.mark.both_databases
def test_awaiting_approval_past_its_end_date_expires_and_cannot_be_approved(
        app, as_user, set_now):
    set_now(at(D))
    waiting = apply(as_user, valid_until=day(2))
    late = apply(as_user, recipient="Lars", valid_until=day(2))
    set_now(at(day(3)))
    # even before the sweep has run, the approval is refused
    assert rule_of(lambda: approve(as_user, late.id)) == "transition_not_allowed"
    assert sweeps.run_all(at(day(3), hour=3))["expired"] == 2
    expired = reload(waiting.id)
    assert expired.status == "expired" and expired.return_requested_at is not None
    assert rule_of(lambda: approve(as_user, waiting.id)) == "transition_not_allowed"
    assert not mails("card_activation")
    assert len(mails("return_request", waiting.id)) == 1
    # never approved: no extension either
    with as_user("servicecenter"):
        assert rule_of(lambda: lifecycle.extend(waiting.id)) == "extension_not_allowed"


# --- the card's own expiry caps every end date ------------------------------------------------

def test_end_date_never_runs_past_the_cards_own_expiry(app, as_user, set_now):
    set_now(at(D))
    serial = card_expiring(day(5))
    error = rule_of(lambda: apply(as_user, serial=serial, valid_until=day(6)))
    assert error == "validity_past_card_expiry"
    # the default is the earlier of the reason's maximum and the card's expiry
    assert apply(as_user, serial=serial).valid_until == day(5)
    assert application.max_valid_until("forgotten", D, db.session.execute(
        select(ReserveCard).where(ReserveCard.serial == serial)).scalar_one()) == day(5)
    # too long for the reason is still validity_too_long
    other = card_expiring(day(50))
    assert rule_of(lambda: apply(as_user, recipient="Lars", serial=other,
                                 valid_until=day(11))) == "validity_too_long"


def test_extension_never_runs_past_the_cards_own_expiry(app, as_user, set_now):
    set_now(at(D))
    issuance = apply(as_user, serial=card_expiring(day(15)))  # forgotten: until D+10
    approve(as_user, issuance.id)
    with as_user("servicecenter"):
        assert lifecycle.extend(issuance.id).valid_until == day(15)  # not D+20
    nothing_left = apply(as_user, recipient="Lars", serial=card_expiring(day(10)))
    approve(as_user, nothing_left.id)
    with as_user("servicecenter"):
        assert rule_of(lambda: lifecycle.extend(nothing_left.id)) == "validity_past_card_expiry"


def test_mail_flow_end_date_is_capped_at_the_cards_expiry(app, as_user, set_now):
    set_now(at(D))
    with as_user("korthandlaggare"):
        serial = card_expiring(day(20))
        with pytest.raises(RuleViolation) as caught:
            mail_flow.prepare(serial, person("Björn").hsa_id, "awaiting_new_card", "Adress 1",
                              "Distans", valid_until=day(25))
        assert caught.value.rule == "validity_past_card_expiry"


# --- a person holds a card until it is back ---------------------------------------------------

@pytest.mark.both_databases
def test_blocked_and_rejected_cards_still_count_as_the_persons_one_card(app, as_user, set_now):
    set_now(at(D))
    blocked = apply(as_user)
    with as_user("servicecenter"):
        lifecycle.block(blocked.id, "Misstänkt missbruk")
    assert rule_of(lambda: apply(as_user)) == "recipient_has_open_issuance"
    rejected = apply(as_user, recipient="Lars")
    with as_user("televaxeln"):
        approval.reject(rejected.id, "Fel i Kobe")
    assert rule_of(lambda: apply(as_user, recipient="Lars")) == "recipient_has_open_issuance"
    facts = application.recipient_facts(person("Lars"))
    assert facts["open_issuance_id"] == rejected.id
    with as_user("servicecenter"):
        lifecycle.return_card(blocked.id)
    assert apply(as_user).status == "awaiting_approval"


def _raw_issuance(recipient_id, card_id, status):
    return insert(Issuance).values(
        channel="in_person", status=status, card_id=card_id, recipient_id=recipient_id,
        reason="forgotten", created_at=clock.now(), issued_at=clock.now(), valid_until=day(10),
        original_days=10, receipt_due=day(7))


@pytest.mark.both_databases
def test_the_database_holds_one_card_out_per_person_and_per_card(app, as_user, set_now):
    set_now(at(D))
    blocked = apply(as_user)
    with as_user("servicecenter"):
        lifecycle.block(blocked.id, "Spärrat")
    cards = db.session.execute(select(ReserveCard.id).where(
        ReserveCard.serial.in_(free_cards(3)))).scalars().all()
    anna = person("Anna").id
    with pytest.raises(IntegrityError):  # a second card for a person whose card is blocked
        db.session.execute(_raw_issuance(anna, cards[0], "awaiting_approval"))
    db.session.rollback()
    with pytest.raises(IntegrityError):  # a second issuance of a card that is out
        db.session.execute(_raw_issuance(person("Lars").id, blocked.card_id, "awaiting_approval"))
    db.session.rollback()
    # ended issuances and envelopes still at Servicecenter are not out with the person
    for status in ("returned", "lost", "prepared"):
        db.session.execute(_raw_issuance(anna, cards[1], status))
    db.session.rollback()


# --- the extension window is reachable --------------------------------------------------------

def test_expired_card_not_yet_back_can_be_extended_within_the_window(app, as_user, set_now):
    set_now(at(D))
    issuance = apply(as_user)  # forgotten: 10 days, until D+10
    approve(as_user, issuance.id)
    with as_user("servicecenter"):
        lifecycle.register_receipt(issuance.id)
    sweeps.run_all(at(day(20)))
    assert reload(issuance.id).status == "expired"
    set_now(at(day(20)))
    with as_user("servicecenter"):
        extended = lifecycle.extend(issuance.id)
    # the new period starts on the day of the extension and lasts the original length
    assert extended.status == "extended" and extended.valid_until == day(30)
    assert extended.extension.previous_valid_until == day(10)
    running = apply(as_user, recipient="Lars")
    approve(as_user, running.id)
    set_now(at(day(25)))
    with as_user("servicecenter"):
        assert lifecycle.extend(running.id).valid_until == day(40)  # old end D+30, then +10


# --- registered mail: validity from the certificate -------------------------------------------

@pytest.mark.both_databases
def test_mail_card_validity_starts_when_the_certificate_is_issued(app, as_user, set_now):
    set_now(at(D))
    with as_user("korthandlaggare"):
        issuance = mail_flow.prepare(free_cards(1)[0], person("Björn").hsa_id,
                                     "awaiting_new_card", "Storgatan 1, Varberg", "Distans")
        assert issuance.valid_until is None and issuance.original_days == 30
        set_now(at(day(2)))
        mail_flow.dispatched(issuance.id, "RR123456785SE")
        set_now(at(day(9)))
        mail_flow.receipt_returned(issuance.id)
        set_now(at(day(12)))
        active = mail_flow.certificate_issued(issuance.id)
    assert active.issued_at == at(day(12)) and active.valid_until == day(42)
    assert sweeps.run_all(at(day(35)))["expired"] == 0


@pytest.mark.both_databases
def test_prepared_envelope_still_at_servicecenter_is_not_reported_missing(app, as_user, set_now):
    set_now(at(D))
    with as_user("korthandlaggare"):
        issuance = mail_flow.prepare(free_cards(1)[0], person("Björn").hsa_id,
                                     "awaiting_new_card", "Storgatan 1, Varberg", "Distans")
    result = sweeps.run_all(at(day(60)))
    assert not result["not_returned"] and not result["expired"]
    assert count(Deviation, Deviation.issuance_id == issuance.id) == 0


# --- Kobe: the ordinary card, not any change of the row ----------------------------------------

@pytest.mark.both_databases
def test_return_request_follows_the_ordinary_card_not_any_change_of_the_kobe_row(
        app, as_user, set_now):
    set_now(at(D))
    from models import KobeRecord

    # Anna's ordinary card has been active since long before the issue
    db.session.execute(KobeRecord.__table__.update().values(
        updated_at=at(D) - timedelta(days=100), ordinary_card_since=at(D) - timedelta(days=100)))
    db.session.commit()
    issuance = apply(as_user, reason="lost_stolen_damaged")
    approve(as_user, issuance.id)
    set_now(at(day(1)))
    kobe.set_record(person("Anna").hsa_id, "active", True)  # only the reserve-card order
    assert sweeps.run_all(at(day(1), hour=12))["return_requests_ordinary_card"] == 0
    set_now(at(day(2)))
    kobe.set_record(person("Anna").hsa_id, "ordered", True)
    set_now(at(day(5)))
    kobe.set_record(person("Anna").hsa_id, "active", True)  # the new ordinary card is here
    assert sweeps.run_all(at(day(5), hour=12))["return_requests_ordinary_card"] == 1


# --- the assignment and the number of attesters in the API ------------------------------------

def _application(api, who="Intygsgivare", recipient="Cecilia", reason="temporary_assignment",
                 **extra):
    body = {"card_serial": api.free_card(), "recipient_hsa_id": person(recipient).hsa_id,
            "reason": reason, "password": PASSWORD,
            "recipient_present": True, "envelope_unopened": True, **extra}
    return api.post(who, "/issuances/", body)


def test_the_assignment_is_a_workflow_rule_for_every_path(app, api, as_user):
    second = {"username": "intygsgivare2", "password": PASSWORD}
    missing = _application(api, second_attester=second)
    assert missing.status_code == 400 and "assignment" in missing.get_json()["errors"]
    with pytest.raises(FieldError) as caught, as_user("korthandlaggare"):
        mail_flow.prepare(free_cards(1)[0], person("Cecilia").hsa_id, "temporary_assignment",
                          "Byvägen 2, Laholm", "Distans")
    assert caught.value.field == "assignment"
    assert api.ok(_application(api, second_attester=second, assignment="Vikariat"), 201)


@pytest.mark.parametrize("required,others", [(1, []), (3, ["intygsgivare2", "chef"])])
def test_the_api_takes_as_many_attesters_as_the_organisation_type_needs(
        app, api, as_user, required, others):
    from app.workflow import registers

    with as_user("admin"):
        for name in ("Cecilia", "Lars"):
            registers.set_attesters_required(person(name).unit.org_type_code, required)
    attesters = [{"username": name, "password": PASSWORD} for name in others]
    created = api.ok(_application(api, other_attesters=attesters, assignment="Vikariat"), 201)
    detail = api.ok(api.get("Servicecenter", f"/issuances/{created['id']}"))
    assert len(detail["attesters"]) == required
    if required == 3:
        too_few = _application(api, recipient="Lars", reason="forgotten",
                               other_attesters=attesters[:-1])
        assert too_few.get_json()["rule"] == "attesters_too_few"
    both = _application(api, recipient="Lars", reason="forgotten", other_attesters=attesters,
                        second_attester={"username": "intygsgivare2", "password": PASSWORD})
    assert both.status_code == 400 and "second_attester" in both.get_json()["errors"]


# --- attester 1 authenticates in the application itself --------------------------------------

def test_api_caller_must_give_their_password_again(app, api):
    body = {"second_attester": {"username": "intygsgivare2", "password": PASSWORD},
            "assignment": "Vikariat"}
    without = _application(api, **{**body, "password": None})
    assert without.status_code == 422 and without.get_json()["rule"] == "attesters_too_few"
    wrong = _application(api, **{**body, "password": "not-my-password"})
    assert wrong.status_code == 422 and wrong.get_json()["rule"] == "attesters_too_few"
    assert count(Issuance) == 0
    assert api.ok(_application(api, **body), 201)["status"] == "awaiting_approval"


def test_workflow_refuses_attesters_that_did_not_authenticate_in_the_session(app, as_user,
                                                                            set_now):
    set_now(at(D))
    with as_user("intygsgivare1"):
        helena = person("Helena")
        # people named, not authenticated: not enough, also not for the logged-in caller
        assert rule_of(lambda: application.apply_in_person(
            free_cards(1)[0], person("Anna").hsa_id, "forgotten", [person("Gustav"), helena],
            True, True)) == "attesters_too_few"
        # the others authenticated, the caller did not
        assert rule_of(lambda: application.apply_in_person(
            free_cards(1)[0], person("Anna").hsa_id, "forgotten",
            attestations([helena], caller=False), True, True)) == "attesters_too_few"
        # an authentication from long ago does not count
        stale = [application.Attestation(p, at(D) - timedelta(hours=7))
                 for p in (person("Gustav"), helena)]
        assert rule_of(lambda: application.apply_in_person(
            free_cards(1)[0], person("Anna").hsa_id, "forgotten", stale, True,
            True)) == "attesters_too_few"


def test_wizard_attester_one_authenticates_and_each_moment_is_recorded(app, login, set_now):
    from tests.test_wizard import Wizard

    set_now(at(D, hour=8))
    client = login("Intygsgivare")  # logged in at 08:00
    set_now(at(D, hour=15))
    wizard = Wizard(client)
    wizard.card(free_cards(1)[0])
    wizard.recipient(person("Anna").hsa_id)
    wizard.reason("forgotten")
    # the second attester alone does not get past the step: attester 1 has not authenticated
    wizard.me_done = True  # skip the helper's own authentication of attester 1
    assert wizard.get("summary").headers["Location"].endswith("/intygsgivare")
    assert wizard.me("wrong-password").status_code == 200
    assert wizard.get("summary").headers["Location"].endswith("/intygsgivare")
    set_now(at(D, hour=15) + timedelta(minutes=1))
    wizard.me()
    set_now(at(D, hour=15) + timedelta(minutes=3))
    wizard.attester("intygsgivare2")
    set_now(at(D, hour=15) + timedelta(minutes=9))
    assert wizard.complete().status_code == 302
    issuance = db.session.execute(select(Issuance)).unique().scalar_one()
    assert [(a.person.name, a.authenticated_at) for a in issuance.attesters] == [
        ("Gustav Gran", at(D, hour=15) + timedelta(minutes=1)),
        ("Helena Håkansson", at(D, hour=15) + timedelta(minutes=3))]


def test_client_certificate_login_counts_the_presented_card(app, set_now):
    set_now(at(D))
    from flask_login import login_user

    user = app.appbuilder.sm.find_user(username="intygsgivare1")
    app.config["CLIENT_CERT_LOGIN"] = True
    with app.test_request_context(environ_base={"REMOTE_USER": "intygsgivare1"}):
        login_user(user)
        assert application.attest_caller().person.name == "Gustav Gran"
    with app.test_request_context():  # no card presented: the password is needed
        login_user(user)
        assert rule_of(application.attest_caller) == "attesters_too_few"


# --- refusals are logged with their rule code, once -------------------------------------------

def _refusals(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "app.workflow.refusals"]


def test_each_refusal_is_logged_once_with_rule_step_user_and_ids(app, api, caplog, as_user,
                                                                set_now):
    caplog.set_level(logging.INFO, logger="app.workflow.refusals")
    set_now(at(D))
    issuance = apply(as_user)
    caplog.clear()
    with as_user("servicecenter"):
        rule_of(lambda: lifecycle.extend(issuance.id))  # not approved yet
    [line] = _refusals(caplog)
    assert "rule=extension_not_allowed" in line and "step=lifecycle.extend" in line
    assert "user=servicecenter" in line and f"'issuance_id': {issuance.id}" in line
    caplog.clear()
    with as_user("intygsgivare1"):  # refused deep inside the step: logged by the step, once
        rule_of(lambda: apply(as_user, serial=issuance.card.serial, recipient="Lars"))
    [line] = _refusals(caplog)
    assert "rule=card_not_in_stock" in line and "step=application.apply_in_person" in line
    assert issuance.card.serial in line
    caplog.clear()
    answer = api.post("Servicecenter", f"/issuances/{issuance.id}/extend", {})
    assert answer.get_json()["rule"] == "extension_not_allowed"
    assert len(_refusals(caplog)) == 1
    caplog.clear()
    with as_user("intygsgivare1"):  # a check the wizard calls on its own
        rule_of(lambda: application.check_card("1234567890"))
    [line] = _refusals(caplog)
    assert "rule=card_unknown" in line and "step=application.check_card" in line


# --- every day count in Swedish days ----------------------------------------------------------

def test_sweep_command_reads_a_time_without_offset_as_swedish_time(app, runner, as_user,
                                                                 set_now):
    # completed 00:30 Swedish time on the day summer time begins (23:30 UTC the day before)
    set_now(clock.to_utc_naive(datetime(2026, 3, 29, 0, 30, tzinfo=clock.LOCAL_TZ)))
    issuance = apply(as_user)
    assert issuance.receipt_due == date(2026, 4, 5)
    clock.set_now(None)
    # 23:30 on the due day itself, Swedish time: not late yet
    result = runner.invoke(args=["reservkort", "sweep", "--at", "2026-04-05T23:30"])
    assert result.exit_code == 0 and "receipts_blocked: 0" in result.output, result.output
    result = runner.invoke(args=["reservkort", "sweep", "--at", "2026-04-06T00:10"])
    assert "receipts_blocked: 1" in result.output, result.output


@pytest.mark.both_databases
def test_deadlines_count_swedish_days_across_the_change_to_winter_time(app, as_user, set_now):
    # 00:15 Swedish time on 2026-10-25 (summer time ends at 03:00 that night): 22:15 UTC the 24th
    moment = clock.to_utc_naive(datetime(2026, 10, 25, 0, 15, tzinfo=clock.LOCAL_TZ))
    set_now(moment)
    issuance = apply(as_user)
    assert (issuance.valid_until, issuance.receipt_due) == (date(2026, 11, 4), date(2026, 11, 1))
    approve(as_user, issuance.id)
    with as_user("servicecenter"):
        lifecycle.register_receipt(issuance.id)
    last_minute = clock.to_utc_naive(datetime(2026, 11, 4, 23, 59, tzinfo=clock.LOCAL_TZ))
    assert sweeps.run_all(last_minute)["expired"] == 0
    first_minute = clock.to_utc_naive(datetime(2026, 11, 5, 0, 1, tzinfo=clock.LOCAL_TZ))
    assert sweeps.run_all(first_minute)["expired"] == 1
    assert ALL_CHECKS  # the helpers' checks are those Televäxeln confirms
