"""The scheduled jobs: `rq cron` enqueues the sweeps and the e-mail catch-up; a sweep run twice,
or twice at the same moment, changes things once; the command and the job agree."""

import shutil
import subprocess
import threading
from datetime import timedelta

import pytest
from rq import Queue
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from app import clock
from app.extensions import db
from jobs.queue import DISPATCH_JOB, QUEUE_NAME, SWEEP_JOB
from models import AuditEvent, Deviation, Issuance, OutboxMessage, SweepRun
from tests.job_support import ROOT, RQ, redis_server, smtp_server, wait_until, workers  # noqa: F401

RECIPIENTS = ("Anna", "Lars", "Maria")


def _apply_all(as_user, demo_person, in_stock_card, prefixes=RECIPIENTS):
    from app.workflow import application
    from tests.workflow_support import attestations

    with as_user("Intygsgivare"):
        for prefix in prefixes:
            application.apply_in_person(
                in_stock_card("LOA2").serial, demo_person(prefix).hsa_id, "forgotten",
                attestations([demo_person("Helena")]), recipient_present=True,
                envelope_unopened=True)


def _overdue_moment():
    """Past every receipt deadline of applications made now."""
    return clock.now() + timedelta(days=10)


def _state(session=None):
    """What a sweep can change, as plain values."""
    session = session or db.session
    session.expire_all()
    return {
        "issuances": sorted(session.execute(select(Issuance.id, Issuance.status)).all()),
        "deviations": sorted(session.execute(select(Deviation.issuance_id, Deviation.type)).all()),
        "outbox": sorted(session.execute(
            select(OutboxMessage.template, OutboxMessage.issuance_id, OutboxMessage.to_addrs)
        ).all()),
        "audit": sorted(session.execute(
            select(AuditEvent.actor, AuditEvent.action, AuditEvent.entity, AuditEvent.entity_id)
        ).all()),
    }


def _state_of(url):
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            return _state(session)
    finally:
        engine.dispose()


@pytest.fixture
def job_app(app):
    """Run the job functions in this test's app (as a worker runs them in its own)."""
    from jobs import context

    saved = dict(context._state)
    context.use_app(app)
    yield app
    context._state.update(saved)


def test_a_sweep_run_twice_at_the_same_moment_changes_nothing(job_app, as_user, demo_person,
                                                              in_stock_card):
    from jobs.tasks import run_sweeps

    _apply_all(as_user, demo_person, in_stock_card)
    moment = _overdue_moment().isoformat()
    first = run_sweeps(moment)
    assert first["receipts_blocked"] == len(RECIPIENTS)
    after_first = _state()
    second = run_sweeps(moment)
    assert set(second.values()) == {0}, second
    assert _state() == after_first
    runs = db.session.execute(select(SweepRun).order_by(SweepRun.id)).scalars().all()
    assert [(run.trigger, run.result) for run in runs] == [("schedule", first),
                                                           ("schedule", second)]


def test_the_command_and_the_scheduled_job_agree(runner, as_user, demo_person,
                                                 in_stock_card, database_url, redis_server,  # noqa: F811
                                                 workers, tmp_path):  # noqa: F811
    _apply_all(as_user, demo_person, in_stock_card)
    db.session.remove()
    twin = tmp_path / "twin.db"
    shutil.copy(database_url.removeprefix("sqlite:///"), twin)  # the same data, twice
    moment = _overdue_moment().isoformat()

    output = runner.invoke(args=["reservkort", "sweep", "--at", moment])
    assert output.exit_code == 0, output.output
    by_command = dict(line.split(": ") for line in output.output.strip().splitlines())
    command_state = _state()

    job = Queue(QUEUE_NAME, connection=redis_server.connection()).enqueue(SWEEP_JOB, moment)
    workers.wait(workers.spawn(workers.env(f"sqlite:///{twin}", redis_server.url)))
    job.refresh()
    assert job.get_status() == "finished"
    assert {name: str(count) for name, count in job.return_value().items()} == by_command
    assert by_command["receipts_blocked"] == str(len(RECIPIENTS))

    assert _state_of(f"sqlite:///{twin}") == command_state


@pytest.mark.postgresql_only
def test_two_sweeps_and_two_workers_at_once_do_everything_once(
        app, as_user, demo_person, in_stock_card, database_url, redis_server,  # noqa: F811
        smtp_server, workers):  # noqa: F811
    from app.workflow import sweeps

    _apply_all(as_user, demo_person, in_stock_card)
    moment = _overdue_moment()
    start = threading.Barrier(2)
    results, errors = [], []

    def sweep():
        with app.app_context():
            try:
                start.wait(timeout=10)
                results.append(sweeps.run_all(moment, trigger="schedule"))
            except Exception as exc:  # reported below
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert sum(result["receipts_blocked"] for result in results) == len(RECIPIENTS)

    db.session.expire_all()
    blocked = db.session.execute(select(Issuance.id).where(Issuance.status == "blocked")
                                 ).scalars().all()
    assert len(blocked) == len(RECIPIENTS)
    for table, condition in [
        (AuditEvent, AuditEvent.action == "issuance.block"),
        (Deviation, Deviation.type == "receipt_missing_blocked"),
        (OutboxMessage, OutboxMessage.template == "issuance_blocked"),
    ]:
        key = table.entity_id if table is AuditEvent else table.issuance_id
        counts = db.session.execute(select(key, func.count()).where(condition).group_by(key)
                                    ).all()
        assert sorted(counts) == [(issuance_id, 1) for issuance_id in sorted(blocked)], table

    # Two workers dispatch the outbox at once: every message reaches the server once.
    queue = Queue(QUEUE_NAME, connection=redis_server.connection())
    queue.enqueue(DISPATCH_JOB, moment.isoformat())  # the sweep's mail is due as of its moment
    queue.enqueue(DISPATCH_JOB, moment.isoformat())
    env = workers.env(database_url, redis_server.url, smtp_server.port)
    for process in [workers.spawn(env), workers.spawn(env)]:
        workers.wait(process)
    total = db.session.execute(select(func.count()).select_from(OutboxMessage)).scalar()
    ids = smtp_server.message_ids()
    assert len(ids) == total and len(set(ids)) == total


def test_rq_cron_enqueues_the_sweeps_and_the_mail_catch_up(redis_server, workers):  # noqa: F811
    from rq.cron import CronScheduler

    env = {**workers.env("sqlite://", redis_server.url), "SWEEP_INTERVAL_MINUTES": "7"}
    process = subprocess.Popen([RQ, "cron", "jobs/cron.py", "--url", redis_server.url],
                               cwd=ROOT, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers.processes.append(process)
    queue = Queue(QUEUE_NAME, connection=redis_server.connection())
    # Interval jobs are enqueued once at start, then on their interval.
    wait_until(lambda: len(queue.get_job_ids()) == 2, 30, "rq cron to enqueue its jobs")
    assert sorted(job.func_name for job in queue.get_jobs()) == [DISPATCH_JOB, SWEEP_JOB]
    (scheduler,) = CronScheduler.all(redis_server.connection())
    intervals = {job.func_name: job.interval for job in scheduler.get_jobs()}
    assert intervals == {SWEEP_JOB: 7 * 60, DISPATCH_JOB: 60}
