"""The deadline sweeps, day by day across their boundaries; each run twice to prove idempotence."""

from datetime import date, timedelta

import pytest
from sqlalchemy import select, text

from app import clock
from app.workflow import kobe, lifecycle, mail_flow, sweeps
from models import AuditEvent, Deviation, Issuance, SweepRun
from tests.workflow_support import apply, approve, at, free_cards, mails, person

D = date(2030, 3, 4)  # later than any demo timestamp, so Kobe "updated" times lie before it


def day(n):
    return D + timedelta(days=n)


def _setup(as_user, set_now):
    set_now(at(D))
    a = apply(as_user, recipient="Anna")  # forgotten: valid to D+10, receipt due D+7
    b = apply(as_user, recipient="Björn", reason="awaiting_new_card", valid_until=day(10))
    approve(as_user, b.id)
    with as_user("servicecenter"):
        lifecycle.register_receipt(b.id)
    with as_user("korthandlaggare"):
        c = mail_flow.prepare(free_cards(1)[0], person("Cecilia").hsa_id, "temporary_assignment",
                              "Cecilia Ängström, Byvägen 2, 312 00 Laholm", "På distans",
                              assignment="Vikariat i Laholm")
        mail_flow.dispatched(c.id, "RR123456785SE")  # receipt due back D+14
    return a.id, b.id, c.id


# day offset -> the sweeps that must change something that day (all others: 0)
EXPECTED = [
    (2, {}),
    (3, {"expiry_reminders_first": 1, "return_requests_ordinary_card": 1}),
    (4, {}),
    (5, {"receipt_reminders": 1}),
    (7, {"expiry_reminders_second": 1}),
    (8, {"receipts_blocked": 1}),
    (10, {}),
    (11, {"expired": 1}),
    (14, {}),
    (15, {"mail_receipts_overdue": 1}),
    (17, {}),
    (18, {"not_returned": 2}),
]


@pytest.mark.postgresql_only
def test_a_sweep_finds_its_unique_index_in_a_prepared_generically_planned_statement(
        app, as_user, set_now, generic_plans, session):
    a, b, _ = _setup(as_user, set_now)
    plan_mode = session.execute(text("SHOW plan_cache_mode")).scalar()
    set_now(at(day(18)))
    first = sweeps.run_all(at(day(18), hour=3))
    second = sweeps.run_all(at(day(18), hour=3))
    assert plan_mode == "force_generic_plan"
    assert first["not_returned"] == 2 and not any(second.values()), (first, second)
    assert sorted(session.execute(select(Deviation.issuance_id).where(
        Deviation.type == "not_returned")).scalars()) == sorted([a, b])


@pytest.mark.both_databases
def test_sweeps_day_by_day(app, as_user, set_now, session):
    a, b, c = _setup(as_user, set_now)
    for offset, expected in EXPECTED:
        set_now(at(day(offset)))
        if offset == 3:  # Björn's new ordinary card is now active in Kobe
            kobe.set_record(person("Björn").hsa_id, "active", False)
        first = sweeps.run_all(at(day(offset), hour=3))
        assert {k: v for k, v in first.items() if v} == expected, (offset, first)
        second = sweeps.run_all(at(day(offset), hour=3))
        assert not any(second.values()), (offset, second)
    session.expire_all()
    blocked, expired = session.get(Issuance, a), session.get(Issuance, b)
    assert blocked.status == "blocked" and blocked.blocked_by_user_id is None
    assert blocked.blocked_at == at(day(8), hour=3)
    assert expired.status == "expired" and expired.expired_at == at(day(11), hour=3)
    assert expired.return_requested_at == at(day(3), hour=3)  # the first request is kept
    assert expired.expiry_reminder_7_at and expired.expiry_reminder_3_at
    kinds = sorted((d.type, d.issuance_id) for d in session.query(Deviation))
    assert kinds == sorted([("receipt_missing_blocked", a), ("not_returned", a),
                            ("not_returned", b), ("mail_receipt_not_returned", c)])
    assert {d.unit_id for d in session.query(Deviation).filter_by(issuance_id=a)} == {
        person("Anna").unit_id}
    assert len(mails("issuance_blocked", a)) == 1
    assert len(mails("receipt_reminder", a)) == 1
    assert [m.template for m in mails(issuance_id=b) if m.template in (
        "expiry_reminder", "return_request")] == ["expiry_reminder", "return_request",
                                                  "expiry_reminder", "return_request"]
    manager_mails = mails("not_returned_manager")
    assert len(manager_mails) == 2 and {m.to_addrs for m in manager_mails} == {
        "person11@example.se"}
    system_actions = session.execute(
        select(AuditEvent.action).where(AuditEvent.actor == "system",
                                        AuditEvent.action != "demo.load")).scalars().all()
    assert system_actions.count("deviation.create") == 4
    assert {"issuance.block", "issuance.expire", "issuance.receipt_reminder",
            "issuance.expiry_reminder", "issuance.return_request"} <= set(system_actions)
    assert session.query(SweepRun).count() == 2 * len(EXPECTED)


def test_received_receipt_and_returned_card_stop_the_sweeps(app, as_user, set_now, session):
    set_now(at(D))
    issuance = apply(as_user)
    with as_user("servicecenter"):
        lifecycle.register_receipt(issuance.id)
    assert sweeps.run_all(at(day(8)))["receipts_blocked"] == 0
    with as_user("servicecenter"):
        lifecycle.return_card(issuance.id)
    assert not any(sweeps.run_all(at(day(30))).values())
    # a forgotten card's holder has had an active ordinary card all along: no return request
    other = apply(as_user, recipient="Anna")
    approve(as_user, other.id)
    assert sweeps.run_all(at(day(1)))["return_requests_ordinary_card"] == 0


def test_sweep_command(app, runner, as_user, set_now, session):
    set_now(at(D))
    issuance = apply(as_user)
    clock.set_now(None)
    moment = f"{day(8).isoformat()}T09:00:00+01:00"
    result = runner.invoke(args=["reservkort", "sweep", "--at", moment])
    assert result.exit_code == 0, result.output
    assert "receipts_blocked: 1" in result.output
    session.expire_all()
    assert session.get(Issuance, issuance.id).status == "blocked"
    run = session.query(SweepRun).one()
    assert run.trigger == "command" and run.as_of == at(day(8), hour=9)
    assert run.result["receipts_blocked"] == 1
    bad = runner.invoke(args=["reservkort", "sweep", "--at", "tomorrow"])
    assert bad.exit_code != 0 and "ISO" in bad.output
