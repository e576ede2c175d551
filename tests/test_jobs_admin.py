"""Admin's "Jobs and e-mail" screen: queue health, failed jobs requeued, the last sweep, failed
e-mail resent (audited); the outbox list; nobody else may open them."""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from rq import Queue, SimpleWorker
from sqlalchemy import select

from app import clock, mailer
from app.extensions import db
from app.outbox import queue_email
from jobs.queue import QUEUE_NAME
from models import AuditEvent, OutboxMessage, SweepRun
from tests.job_support import redis_server, smtp_server  # noqa: F401


@pytest.fixture
def app_config(redis_server, smtp_server):  # noqa: F811
    return {"REDIS_URL": redis_server.url, "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": smtp_server.port, "OUTBOX_MAX_ATTEMPTS": 2}


def _queue_one():
    queue_email("receipt_reminder", "anna@example.se", {
        "card": SimpleNamespace(serial="912345"), "recipient": SimpleNamespace(name="Anna"),
        "issuance": SimpleNamespace(receipt_due="2026-05-04")})
    db.session.commit()
    return db.session.execute(select(OutboxMessage.id)).scalar_one()


def _fail_a_job(redis_server):  # noqa: F811
    queue = Queue(QUEUE_NAME, connection=redis_server.connection())
    job = queue.enqueue("math.sqrt", -1)
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    assert queue.failed_job_registry.get_job_ids() == [job.id]
    return queue, job


def test_failed_mail_is_shown_and_resend_delivers_it(app, login, smtp_server):  # noqa: F811
    message_id = _queue_one()
    smtp_server.stop()
    now = clock.now()
    assert mailer.dispatch_due(now)["retry"] == 1
    assert mailer.dispatch_due(now + timedelta(hours=1))["failed"] == 1  # the 2nd and last try

    admin = login("Admin")
    page = admin.get("/admin/jobs/").get_data(as_text=True)
    assert "912345" in page and "Connection refused" in page
    assert f"/admin/jobs/resend/{message_id}" in page

    response = admin.post(f"/admin/jobs/resend/{message_id}")
    assert response.status_code == 302
    db.session.expire_all()
    message = db.session.get(OutboxMessage, message_id)
    assert (message.status, message.attempts) == ("pending", 0)
    event = db.session.execute(select(AuditEvent).where(
        AuditEvent.action == "outbox.resend")).scalar_one()
    assert (event.actor, event.entity_id, event.before["status"]) == ("admin", message_id,
                                                                       "failed")

    smtp_server.start()
    assert mailer.dispatch_due()["sent"] == 1
    assert smtp_server.message_ids() == [mailer.message_id_for(message_id)]
    assert "912345" not in admin.get("/admin/jobs/").get_data(as_text=True)


def test_failed_job_is_listed_and_requeued(app, login, redis_server):  # noqa: F811
    queue, job = _fail_a_job(redis_server)
    admin = login("Admin")
    page = admin.get("/admin/jobs/").get_data(as_text=True)
    assert job.id in page and "math.sqrt" in page and "ValueError" in page

    assert admin.post(f"/admin/jobs/requeue/{job.id}").status_code == 302
    assert queue.get_job_ids() == [job.id]
    assert queue.failed_job_registry.count == 0


def test_last_sweep_and_queue_down_are_shown(app, login, redis_server):  # noqa: F811
    db.session.add(SweepRun(started_at=clock.now(), finished_at=clock.now(), as_of=clock.now(),
                            trigger="schedule", result={"receipts_blocked": 3}))
    db.session.commit()
    admin = login("Admin")
    page = admin.get("/admin/jobs/").get_data(as_text=True)
    assert "receipts_blocked" in page and "jobs-queue-counts" in page

    redis_server.stop()
    response = admin.get("/admin/jobs/")
    assert response.status_code == 200
    assert "jobs-redis-down" in response.get_data(as_text=True)


def test_outbox_list_shows_every_message(app, login):
    _queue_one()
    page = login("Admin").get("/admin/outbox/list/").get_data(as_text=True)
    assert "912345" in page and "anna@example.se" in page


def test_the_screens_speak_swedish(app, login):
    page = login("Admin").get("/admin/jobs/").get_data(as_text=True)
    assert "Jobb och e-post" in page and "Inga misslyckade jobb." in page


@pytest.mark.parametrize("role", ["Servicecenter", "Televäxeln", "Chef"])
def test_only_admin_reaches_the_screens(app, login, role):
    message_id = _queue_one()
    other = login(role)
    assert other.get("/admin/jobs/").status_code == 403
    assert other.get("/admin/outbox/list/").status_code == 403
    assert other.post(f"/admin/jobs/resend/{message_id}").status_code == 403
    assert db.session.get(OutboxMessage, message_id).status == "pending"
