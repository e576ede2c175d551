"""A worker killed with SIGKILL in the middle of sending: the job runs again on another worker,
the interrupted claims are recovered, and every e-mail arrives exactly once. Here on SQLite;
tests/test_ops_faults.py runs the same on a private PostgreSQL cluster."""

import time
from types import SimpleNamespace

import pytest
from rq.job import Job
from sqlalchemy import select, update

from app import clock
from app.extensions import db
from app.outbox import queue_email
from jobs.queue import get_queue
from models import OutboxMessage
from tests.job_support import redis_server, smtp_server, wait_until, workers  # noqa: F401


@pytest.fixture
def app_config(redis_server, smtp_server):  # noqa: F811
    return {"REDIS_URL": redis_server.url, "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": smtp_server.port}


def _outbox():
    db.session.expire_all()
    return db.session.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars().all()


def test_killed_worker_job_runs_again_and_nothing_is_lost_or_doubled(
        app, database_url, redis_server, smtp_server, workers):  # noqa: F811
    killed_mid_dispatch(database_url, redis_server, smtp_server, workers)


def killed_mid_dispatch(database_url, redis_server, smtp_server, workers):  # noqa: F811
    """The scenario, in an app context whose queue is `redis_server` and whose database is at
    `database_url`."""
    for number in range(3):
        queue_email("receipt_reminder", f"person{number}@example.se", {
            "card": SimpleNamespace(serial=f"80000{number}"),
            "recipient": SimpleNamespace(name=f"Person {number}"),
            "issuance": SimpleNamespace(receipt_due="2026-05-04")})
    db.session.commit()
    # The commit enqueued one dispatch; follow exactly that job through the crash.
    (job,) = get_queue().get_jobs()
    smtp_server.handler.hold()  # the server stalls before the first message is accepted
    env = workers.env(database_url, redis_server.url, smtp_server.port)

    first = workers.spawn(env)
    wait_until(smtp_server.handler.stalled.is_set, 30, "the first worker to start sending")
    assert {m.status for m in _outbox()} == {"sending"}
    workers.kill(first)
    smtp_server.handler.release()
    job.refresh()
    assert job.get_status() == "started"  # the dead worker never finished it

    # Time passes: the dead worker's heartbeat lapses (RQ's maintenance then requeues the
    # abandoned job, since it has retries left) and the outbox claims' lease runs out.
    registry = job.started_job_registry
    registry.cleanup(timestamp=time.time() + 3600)
    assert job.get_status(refresh=True) == "queued"
    db.session.execute(update(OutboxMessage).where(OutboxMessage.status == "sending")
                       .values(next_attempt_at=clock.now()))
    db.session.commit()

    workers.wait(workers.spawn(env))
    job = Job.fetch(job.id, connection=redis_server.connection())
    assert job.get_status() == "finished"
    assert job.return_value()["sent"] == 3 and job.return_value()["recovered"] == 3

    rows = _outbox()
    assert [(m.status, m.attempts) for m in rows] == [("sent", 2)] * 3
    ids = smtp_server.message_ids()
    assert len(ids) == 3 and len(set(ids)) == 3
