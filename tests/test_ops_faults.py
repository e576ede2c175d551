"""Faults under traffic, each against services of its own: a private PostgreSQL cluster (on its
own port, restarted by the test), a private redis-server and an SMTP server. Outages last
seconds. What must hold: no commit lost, JSON 503s while the database is away and recovery
without restarting anything, workers and the scheduler that outlive Redis, and every e-mail
delivered exactly once."""

import logging
import threading
import time
from types import SimpleNamespace

import pytest
from redis import Redis
from rq import Queue, Worker
from rq.cron_scheduler_registry import get_keys as cron_scheduler_names
from sqlalchemy import func, insert, select, text

from app import clock, create_app, mailer
from app.extensions import db
from app.outbox import queue_email
from config import TestConfig
from jobs.queue import DISPATCH_JOB, QUEUE_NAME, install
from models import Issuance, OutboxMessage, Person, ReserveCard
from tests.conftest import DEMO_PASSWORD
from tests.job_support import redis_server, smtp_server, wait_until, workers  # noqa: F401
from tests.ops_support import pg_cluster  # noqa: F401


@pytest.fixture
def pg_app(pg_cluster, tmp_path, redis_server, smtp_server):  # noqa: F811
    url = pg_cluster.url(pg_cluster.create_database(pg_cluster.template))
    instance = tmp_path / "instance"
    flask_app = create_app(
        TestConfig, SQLALCHEMY_DATABASE_URI=url, INSTANCE_DIR=str(instance),
        MAIL_DIR=str(instance / "mail"), UPLOAD_DIR=str(instance / "uploads"),
        FAB_UPDATE_PERMS=False, REDIS_URL=redis_server.url, SMTP_HOST="127.0.0.1",
        SMTP_PORT=smtp_server.port, RESERVKORT_APP_HOOKS=(install,))
    flask_app.database_url = url
    yield flask_app
    with flask_app.app_context():
        db.session.remove()
        db.engine.dispose()


def _mail(number):
    queue_email("receipt_reminder", f"person{number}@example.se", {
        "card": SimpleNamespace(serial=f"60000{number}"),
        "recipient": SimpleNamespace(name=f"Person {number}"),
        "issuance": SimpleNamespace(receipt_due="2026-05-04")})


def _queue_mail(flask_app, numbers):
    with flask_app.app_context():
        for number in numbers:
            _mail(number)
            db.session.commit()  # each commit asks for a dispatch, as a workflow step does


def _sent(flask_app):
    with flask_app.app_context():
        return db.session.execute(select(func.count()).where(
            OutboxMessage.status == "sent")).scalar()


def _assert_each_once(smtp_server, count):  # noqa: F811
    ids = smtp_server.message_ids()
    assert len(ids) == count and len(set(ids)) == count, (len(ids), len(set(ids)))


def test_postgresql_restart_under_traffic(pg_app, pg_cluster, caplog):  # noqa: F811
    caplog.set_level(logging.INFO)
    with pg_app.app_context():
        cards = db.session.execute(
            select(ReserveCard.serial).where(ReserveCard.status == "in_stock",
                                             ReserveCard.loa == "LOA2",
                                             ReserveCard.bound_person_id.is_(None))
            .order_by(ReserveCard.expires_on.desc()).limit(3)).scalars().all()
        people = {prefix: db.session.execute(select(Person.hsa_id).where(
            Person.name.like(f"{prefix}%"))).scalar_one() for prefix in ("Anna", "Lars", "Maria")}
        db.session.remove()
    api = pg_app.test_client()

    def bearer(username):
        token = api.post("/api/v1/security/login", json={
            "username": username, "password": DEMO_PASSWORD, "provider": "db"}
        ).get_json()["access_token"]
        return {"Authorization": f"Bearer {token}"}

    headers, reader_headers = bearer("intygsgivare1"), bearer("servicecenter")
    screens = pg_app.test_client()
    assert screens.post("/login/", data={"username": "servicecenter",
                                         "password": DEMO_PASSWORD}).status_code == 302

    def apply(client, card, prefix):
        return client.post("/api/v1/issuances/", headers=headers, json={
            "card_serial": card, "recipient_hsa_id": people[prefix], "reason": "forgotten",
            "second_attester": {"username": "intygsgivare2", "password": DEMO_PASSWORD},
            "password": DEMO_PASSWORD, "recipient_present": True, "envelope_unopened": True})

    reads, unexpected, stop = [], [], threading.Event()

    def reader():
        client = pg_app.test_client()
        while not stop.is_set():
            response = client.get("/api/v1/issuances/", headers=reader_headers)
            reads.append((response.status_code, response.headers.get("Retry-After"),
                          response.is_json))
            if response.status_code not in (200, 503):
                unexpected.append(response.get_data(as_text=True)[:500])
            time.sleep(0.02)

    answers = {}

    def writer(card, prefix):
        client = pg_app.test_client()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            response = apply(client, card, prefix)
            answers.setdefault(prefix, []).append(response.status_code)
            if response.status_code != 503:
                return
            time.sleep(0.2)

    threads = [threading.Thread(target=reader)]
    threads[0].start()
    try:
        assert apply(api, cards[0], "Anna").status_code == 201
        pg_cluster.stop("immediate")  # a crash: every pooled connection is dead
        threads.append(threading.Thread(target=writer, args=(cards[1], "Lars")))
        threads[-1].start()
        time.sleep(1.0)
        screen = screens.get("/")
        pg_cluster.start()
        threads[-1].join(40)
        # Back without restarting anything: the same app, its stale pool re-pinged.
        maria = apply(api, cards[2], "Maria")
        assert maria.status_code == 201, maria.get_data(as_text=True)[-1500:]
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join(40)
        if not pg_cluster.answers():
            pg_cluster.start()

    assert screen.status_code == 503
    assert "Databasen går inte att nå just nu" in screen.get_data(as_text=True)
    assert screen.headers["Retry-After"]
    codes = [code for code, _, _ in reads]
    assert 500 not in codes and set(codes) <= {200, 503}, unexpected[:3]
    assert 503 in codes and codes[-1] == 200
    assert all(retry and is_json for code, retry, is_json in reads if code == 503)
    assert answers["Lars"][-1] == 201 and set(answers["Lars"]) <= {201, 503}
    with pg_app.app_context():
        recipients = db.session.execute(select(Person.name).join(
            Issuance, Issuance.recipient_id == Person.id)).scalars().all()
    for name in ("Anna", "Lars", "Maria"):  # every acknowledged commit is there, once
        assert sum(recipient.startswith(name) for recipient in recipients) == 1, recipients
    failed_requests = sum(code == 503 for code in codes) + answers["Lars"].count(503) + 1
    outage_lines = [r for r in caplog.records if r.name == "reservkort.database"]
    assert len(outage_lines) >= failed_requests - 1
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


def test_a_database_restart_after_smtp_acceptance_sends_once(pg_app, pg_cluster,  # noqa: F811
                                                             smtp_server):  # noqa: F811
    _queue_mail(pg_app, [1])
    restarts = []

    def database_restarts():  # right after the server accepted, before the dispatcher's commit
        smtp_server.handler.on_data = None
        pg_cluster.stop("immediate")
        restarts.append(threading.Timer(2.0, pg_cluster.start))
        restarts[-1].start()

    smtp_server.handler.on_data = database_restarts
    with pg_app.app_context():
        counts = mailer.dispatch_due()
    for timer in restarts:
        timer.join(30)
    assert counts["sent"] == 1
    with pg_app.app_context():
        later = clock.now().replace(year=clock.now().year + 1)
        assert mailer.dispatch_due(later)["sent"] == 0
        assert db.session.execute(select(OutboxMessage.status)).scalars().all() == ["sent"]
    _assert_each_once(smtp_server, 1)


def test_workers_and_scheduler_outlive_a_redis_outage(pg_app, redis_server,  # noqa: F811
                                                      smtp_server, workers):  # noqa: F811
    env = workers.env(pg_app.database_url, redis_server.url, smtp_server.port)
    processes = [workers.spawn_module(env, "jobs.worker", "--url", redis_server.url,
                                      "--max-backoff", "1") for _ in range(2)]
    processes.append(workers.spawn_module(env, "jobs.cron", "--url", redis_server.url,
                                          "--max-backoff", "1"))

    def registered():
        connection = Redis.from_url(redis_server.url, socket_connect_timeout=1)
        try:
            return (len(Worker.all(connection=connection)) == 2
                    and len(cron_scheduler_names(connection)) == 1)
        finally:
            connection.close()

    wait_until(registered, 40, "two workers and the scheduler")
    _queue_mail(pg_app, range(0, 5))
    wait_until(lambda: _sent(pg_app) == 5, 40, "the first mail")

    redis_server.stop()
    _queue_mail(pg_app, range(5, 10))  # requests still succeed; the mail waits in the outbox
    time.sleep(2.0)
    redis_server.start()  # empty: whatever was in flight is gone
    try:
        wait_until(registered, 40, "the workers and the scheduler to come back")
    except AssertionError as exc:
        raise AssertionError([p.log_path.read_text()[-1500:] for p in processes]) from exc
    _queue_mail(pg_app, range(10, 15))
    wait_until(lambda: _sent(pg_app) == 15, 60, "every e-mail after the outage")

    assert all(process.poll() is None for process in processes), [
        process.log_path.read_text()[-2000:] for process in processes]
    _assert_each_once(smtp_server, 15)


def test_a_backlog_larger_than_a_claim_with_a_slow_server_goes_once(
        pg_app, redis_server, smtp_server, workers):  # noqa: F811
    now = clock.now()
    with pg_app.app_context():
        db.session.execute(insert(OutboxMessage), [
            {"template": "receipt_reminder", "to_addrs": f"p{n}@example.se",
             "subject": f"S {n}", "body_text": "text", "status": "pending", "attempts": 0,
             "next_attempt_at": now, "created_at": now} for n in range(250)])
        db.session.commit()
    smtp_server.handler.delay = 0.02  # a claim of 100 takes longer than its 2 s lease
    env = workers.env(pg_app.database_url, redis_server.url, smtp_server.port,
                      OUTBOX_SENDING_LEASE_SECONDS=2)
    queue = Queue(QUEUE_NAME, connection=redis_server.connection())
    for _ in range(8):  # catch-ups and triggers, all at once
        queue.enqueue(DISPATCH_JOB, job_timeout=120)
    for process in [workers.spawn(env), workers.spawn(env)]:
        workers.wait(process, seconds=120)
    wait_until(lambda: _sent(pg_app) == 250, 5, "the whole backlog")
    _assert_each_once(smtp_server, 250)


def test_a_worker_killed_mid_dispatch_on_postgresql_sends_each_once(
        pg_app, redis_server, smtp_server, workers):  # noqa: F811
    from tests.test_jobs_faults import killed_mid_dispatch

    with pg_app.app_context():
        killed_mid_dispatch(pg_app.database_url, redis_server, smtp_server, workers)


def _rows(flask_app):
    with flask_app.app_context():
        rows = db.session.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars()
        rows = [SimpleNamespace(status=m.status, attempts=m.attempts, last_error=m.last_error,
                                results=m.recipient_results or {}, to=m.to_addrs) for m in rows]
        db.session.remove()
        return rows


def _worker(workers, pg_app, redis_server, smtp_server, **config):  # noqa: F811
    """One production worker process (with rq's scheduler, which runs a retry at its due
    time); no scheduler process, so no catch-up tick can stand in for the retries."""
    env = workers.env(pg_app.database_url, redis_server.url, smtp_server.port,
                      OUTBOX_BACKOFF_SECONDS=1, OUTBOX_MAX_ATTEMPTS=12, SMTP_TIMEOUT_SECONDS=5,
                      **config)
    return workers.spawn_module(env, "jobs.worker", "--url", redis_server.url,
                                "--max-backoff", "1")


def test_smtp_down_then_up_with_worker_processes_sends_each_once(
        pg_app, redis_server, smtp_server, workers):  # noqa: F811
    process = _worker(workers, pg_app, redis_server, smtp_server)
    smtp_server.stop()  # the mail server is away: connections are refused
    _queue_mail(pg_app, range(3))
    try:
        # Tried, refused, and tried again at its due time (only the scheduled retry can).
        wait_until(lambda: all(m.attempts >= 2 and m.status == "pending"
                               for m in _rows(pg_app)), 30, "retries while SMTP is down")
    except AssertionError as exc:
        raise AssertionError(process.log_path.read_text()[-2000:]) from exc
    assert all(m.last_error.startswith("temporary:") for m in _rows(pg_app))
    assert smtp_server.messages == []
    smtp_server.start()  # back on the same port
    wait_until(lambda: _sent(pg_app) == 3, 40, "the mail after SMTP is back")
    time.sleep(1.5)  # a stray retry would deliver again now
    _assert_each_once(smtp_server, 3)
    assert {m.status for m in _rows(pg_app)} == {"sent"}
    assert process.poll() is None, process.log_path.read_text()[-2000:]


def test_a_refused_recipient_with_worker_processes_is_retried_on_its_own(
        pg_app, redis_server, smtp_server, workers):  # noqa: F811
    handler = smtp_server.handler
    handler.rcpt_replies = {"gone@example.se": "550 5.1.1 No such user",
                            "full@example.se": "452 4.2.2 Mailbox full"}
    process = _worker(workers, pg_app, redis_server, smtp_server)
    with pg_app.app_context():
        queue_email("receipt_reminder", ["anna@example.se", "gone@example.se",
                                         "full@example.se"], {
            "card": SimpleNamespace(serial="600001"),
            "recipient": SimpleNamespace(name="Anna"),
            "issuance": SimpleNamespace(receipt_due="2026-05-04")})
        queue_email("receipt_reminder", "lars@example.se", {
            "card": SimpleNamespace(serial="600002"),
            "recipient": SimpleNamespace(name="Lars"),
            "issuance": SimpleNamespace(receipt_due="2026-05-04")})
        db.session.commit()

    def refused_recorded():
        shared, alone = _rows(pg_app)
        return (alone.status == "sent" and shared.status == "pending"
                and shared.results.get("full@example.se", {}).get("status") == "refused")

    try:
        wait_until(refused_recorded, 30, "the first attempt with its refusals")
    except AssertionError as exc:
        raise AssertionError(process.log_path.read_text()[-2000:]) from exc
    shared, _alone = _rows(pg_app)
    assert shared.results["anna@example.se"] == {"status": "sent"}
    assert shared.results["gone@example.se"]["status"] == "failed"
    assert shared.results["gone@example.se"]["code"] == 550

    handler.rcpt_replies = {"gone@example.se": "550 5.1.1 No such user"}  # room again
    wait_until(lambda: _rows(pg_app)[0].status == "failed", 30, "the retry of the full box")
    time.sleep(1.5)  # a stray retry would deliver again now
    shared, alone = _rows(pg_app)
    assert shared.results["full@example.se"] == {"status": "sent"}
    assert "gone@example.se: 550" in shared.last_error
    delivered = sorted(address for _, rcpts in handler.deliveries for address in rcpts)
    # Each accepted recipient exactly once; the refused one never.
    assert delivered == ["anna@example.se", "full@example.se", "lars@example.se"]
    assert process.poll() is None, process.log_path.read_text()[-2000:]


def test_audit_truncation_and_recomputation_are_caught_on_postgresql(pg_app, pg_cluster):  # noqa: F811
    from app import audit
    from models import AuditEvent

    with pg_app.app_context():
        checkpoint = audit.checkpoint()
        assert checkpoint.ok
        # Only someone who can switch the triggers off (the database owner) gets this far.
        db.session.execute(text("SET session_replication_role = replica"))
        rows = db.session.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars().all()
        rewritten_id = rows[1].id
        for event in rows[-2:]:
            db.session.delete(event)
        db.session.flush()
        prev = rows[0].hash
        for index, event in enumerate(rows[1:-2]):  # rewrite row 2 and rebuild the rest
            if index == 0:
                event.actor = "mallory"
            event.prev_hash = prev
            event.hash = audit.row_hash(event)
            prev = event.hash
        db.session.commit()
        db.session.remove()
        result = audit.verify()
    reasons = {entry["reason"] for entry in result["breaks"]}
    assert reasons == {audit.SEAL, audit.TRUNCATED, audit.MISSING}, result["breaks"]
    assert rewritten_id in {entry["id"] for entry in result["breaks"]}
