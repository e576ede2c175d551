"""Health, metrics, structured logs and the Jobs screen's view of whether mail is moving."""

import io
import json
import logging
import time
from datetime import timedelta
from types import SimpleNamespace

import pytest
from rq import Queue, Worker
from sqlalchemy import update

from app import clock
from app.extensions import db
from app.logs import JsonFormatter
from app.outbox import queue_email
from jobs.queue import QUEUE_NAME
from models import OutboxMessage
from tests.job_support import redis_server  # noqa: F401


@pytest.fixture
def app_config(redis_server):  # noqa: F811
    return {"REDIS_URL": redis_server.url}


@pytest.fixture
def live_worker(redis_server):  # noqa: F811
    """A worker registered on the queue, as a running `python -m jobs.worker` is."""
    connection = redis_server.connection()
    worker = Worker([Queue(QUEUE_NAME, connection=connection)], connection=connection)
    worker.register_birth()
    yield worker
    worker.register_death()


def _old_pending_mail(minutes):
    queue_email("receipt_reminder", "anna@example.se", {
        "card": SimpleNamespace(serial="500001"), "recipient": SimpleNamespace(name="Anna"),
        "issuance": SimpleNamespace(receipt_due="2026-05-04")})
    db.session.commit()
    db.session.execute(update(OutboxMessage).values(
        created_at=clock.now() - timedelta(minutes=minutes)))
    db.session.commit()


def test_live_answers_without_login(client):
    response = client.get("/health/live")
    assert response.status_code == 200 and response.get_json() == {"ok": True}


def test_ready_needs_a_live_worker(client, live_worker):
    report = client.get("/health/ready")
    assert report.status_code == 200, report.get_json()
    checks = report.get_json()["checks"]
    assert checks["database"]["ok"] and checks["redis"]["ok"]
    assert checks["workers"] == {"ok": True, "live": 1}

    live_worker.register_death()
    report = client.get("/health/ready")
    assert report.status_code == 503
    assert report.get_json()["checks"]["workers"] == {"ok": False, "live": 0}


def test_ready_fails_when_mail_is_not_moving_and_shows_no_personal_data(client, live_worker):
    _old_pending_mail(minutes=30)
    report = client.get("/health/ready")
    assert report.status_code == 503
    outbox = report.get_json()["checks"]["outbox"]
    assert outbox["ok"] is False and outbox["pending"] == 1
    assert outbox["oldest_pending_seconds"] >= 30 * 60
    assert "@" not in report.get_data(as_text=True)


def test_ready_fails_when_redis_is_away(client, redis_server):  # noqa: F811
    redis_server.stop()
    report = client.get("/health/ready")
    assert report.status_code == 503
    assert report.get_json()["checks"]["redis"]["ok"] is False


def test_metrics_count_requests_outbox_and_failed_signins(client, live_worker):
    _old_pending_mail(minutes=5)
    client.post("/login/", data={"username": "admin", "password": "wrong"})
    client.get("/health/live")
    text = client.get("/metrics").get_data(as_text=True)
    assert "reservkort_outbox_pending 1.0" in text
    assert "reservkort_outbox_failed 0.0" in text
    assert "reservkort_live_workers 1.0" in text
    assert 'reservkort_queue_jobs{state="queued"}' in text
    age = [line for line in text.splitlines()
           if line.startswith("reservkort_outbox_oldest_pending_seconds ")]
    assert age and float(age[0].split()[1]) >= 300
    assert 'reservkort_failed_signins_total{provider="db"}' in text
    assert 'reservkort_http_requests_total{endpoint="health.live",method="GET",status="200"}' \
        in text
    before = _sample(text, 'reservkort_failed_signins_total{provider="db"}')
    client.post("/login/", data={"username": "admin", "password": "wrong again"})
    after = _sample(client.get("/metrics").get_data(as_text=True),
                    'reservkort_failed_signins_total{provider="db"}')
    assert after == before + 1


def _sample(text, name):
    return float(next(line for line in text.splitlines() if line.startswith(name)).split()[-1])


def test_logs_are_json_with_request_id_user_and_rule(app, api_headers):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.INFO)
    try:
        headers = {**api_headers("Intygsgivare"), "X-Request-ID": "req-123"}
        response = app.test_client().post("/api/v1/issuances/", headers=headers, json={
            "card_serial": "9752279999999999", "recipient_hsa_id": "SE2321000131-E000000000001",
            "reason": "forgotten", "recipient_present": True, "envelope_unopened": True,
            "second_attester": {"username": "intygsgivare2",
                                "password": "Reservkort-demo-2026"}})
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
    assert response.status_code == 422, response.get_json()
    assert response.headers["X-Request-ID"] == "req-123"
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    refusal = next(e for e in entries if e["logger"] == "reservkort.refusal")
    assert refusal["rule"] == response.get_json()["rule"]
    assert refusal["request_id"] == "req-123"
    assert refusal["user"] == "intygsgivare1"


def test_jobs_screen_shows_live_workers_and_the_oldest_mail_in_words(login, live_worker):
    client = login("Admin")
    page = client.get("/admin/jobs/").get_data(as_text=True)
    assert 'data-mail-moving="yes"' in page and "Aktiva arbetsprocesser: 1." in page
    assert "Ingen e-post väntar." in page

    _old_pending_mail(minutes=45)
    live_worker.register_death()
    page = client.get("/admin/jobs/").get_data(as_text=True)
    assert 'data-mail-moving="no"' in page and "alert-danger" in page
    assert "E-posten går inte iväg." in page
    assert "Aktiva arbetsprocesser: 0." in page
    assert "Ingen arbetsprocess körs" in page
    assert "för 45 minuter sedan" in page
    assert "har väntat längre än 15 minuter" in page


def test_the_embedded_start_reports_its_worker_as_live(database_template, tmp_path):
    """`make run`: the web app with the jobs in-process and a private redis-server. Its
    readiness counts the in-process worker the whole time, not only while it is busy."""
    import os
    import shutil
    import subprocess
    import sys
    import urllib.error
    import urllib.request

    from tests.job_support import ROOT, free_port, wait_until

    database = tmp_path / "embedded.db"
    shutil.copy(database_template, database)
    port = free_port()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}", "PORT": str(port),
           "RESERVKORT_INSTANCE": str(tmp_path / "instance"), "RESERVKORT_EMBEDDED": "1",
           "FAB_UPDATE_PERMS": "false"}
    for key in ("REDIS_URL", "RESERVKORT_CONFIG", "SMTP_HOST"):
        env.pop(key, None)
    log_path = tmp_path / "run.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "run.py"], cwd=ROOT, env=env,
                                   stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)

    def workers_check():
        if process.poll() is not None:
            raise AssertionError(log_path.read_text()[-2000:])
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready",
                                        timeout=5) as answer:
                body = answer.read()
        except urllib.error.HTTPError as refused:
            body = refused.read()
        except OSError:
            return None
        return json.loads(body)["checks"]["workers"]

    try:
        wait_until(lambda: workers_check() is not None, 60, "the embedded app to answer")
        # A few seconds after the start, and on every later look, the worker is there.
        try:
            wait_until(lambda: workers_check()["live"] >= 1, 15, "the in-process worker")
        except AssertionError as exc:
            raise AssertionError(log_path.read_text()[-2000:]) from exc
        for _ in range(10):
            assert workers_check() == {"ok": True, "live": 1}
            time.sleep(0.3)
    finally:
        process.terminate()  # its Ctrl-C: the redis-server it started goes with it
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def test_the_embedded_worker_runs_jobs_and_due_retries_and_stops_when_asked(redis_server):  # noqa: F811
    import threading
    from datetime import UTC, datetime

    import run
    from tests.job_support import wait_until

    connection = redis_server.connection()
    queue = Queue(QUEUE_NAME, connection=connection)
    stop = threading.Event()
    thread = threading.Thread(target=run.worker_loop, args=(connection, stop), daemon=True)
    thread.start()
    try:
        job = queue.enqueue("builtins.len", "abc")
        now = datetime.now(UTC)
        later = queue.enqueue_at(now + timedelta(seconds=1), "builtins.len", "abcd")
        wait_until(lambda: job.get_status(refresh=True) == "finished", 20, "the queued job")
        wait_until(lambda: later.get_status(refresh=True) == "finished", 20,
                   "the job scheduled for a moment now past")
        assert (job.return_value(), later.return_value()) == (3, 4)
        assert len(Worker.all(queue=queue)) == 1
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive()
    assert Worker.all(queue=queue) == []  # it said goodbye: no stale live worker
