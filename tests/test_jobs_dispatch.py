"""E-mail dispatch: the outbox reaches the SMTP server exactly once, whatever Redis and the mail
server are doing, falls back to .eml files without a server, and gives up visibly after N tries."""

from datetime import timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from types import SimpleNamespace

import pytest
from rq import Queue
from sqlalchemy import func, select

from app import clock, mailer
from app.extensions import db
from app.outbox import queue_email
from jobs.queue import DISPATCH_JOB, QUEUE_NAME, install
from models import AuditEvent, OutboxMessage
from tests.conftest import DEMO_PASSWORD
from tests.job_support import redis_server, smtp_server, workers  # noqa: F401

pytestmark = pytest.mark.usefixtures("smtp_server")


@pytest.fixture
def app_config(redis_server, smtp_server):  # noqa: F811
    return {
        "REDIS_URL": redis_server.url,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": smtp_server.port,
        "RESERVKORT_APP_HOOKS": (install,),
    }


def _statuses():
    rows = db.session.execute(select(OutboxMessage.status, func.count()).group_by(
        OutboxMessage.status)).all()
    return dict(rows)


def _queue_test_mail(count, **extra):
    """Mail queued the way every workflow step does it: in the step's transaction."""
    for number in range(count):
        context = {"card": SimpleNamespace(serial=f"90000{number}"),
                   "recipient": SimpleNamespace(name=f"Person {number}"),
                   "issuance": SimpleNamespace(receipt_due="2026-05-04")}
        queue_email("receipt_reminder", f"person{number}@example.se", context, **extra)
    db.session.commit()


def _apply_over_http(client, headers, card_serial, recipient):
    """The in-person application as the REST API takes it (the caller is attester 1)."""
    return client.post("/api/v1/issuances/", headers=headers, json={
        "card_serial": card_serial, "recipient_hsa_id": recipient.hsa_id, "reason": "forgotten",
        "second_attester": {"username": "intygsgivare2", "password": DEMO_PASSWORD},
        "password": DEMO_PASSWORD, "recipient_present": True, "envelope_unopened": True})


def test_redis_down_requests_succeed_and_each_mail_goes_once_when_back(
        app, client, api_headers, demo_person, in_stock_card, redis_server,  # noqa: F811
        smtp_server, workers, database_url):  # noqa: F811
    headers = api_headers("Intygsgivare")
    redis_server.stop()
    recipients = ("Anna", "Lars", "Maria")
    for prefix in recipients:  # Redis is down: every application must still be completed
        response = _apply_over_http(client, headers, in_stock_card("LOA2").serial,
                                    demo_person(prefix))
        assert response.status_code == 201, response.get_json()
        db.session.remove()
    assert _statuses() == {"pending": 2 * len(recipients)}

    redis_server.start()
    # The periodic catch-up (what `rq cron` enqueues every minute), run by two workers at once.
    queue = Queue(QUEUE_NAME, connection=redis_server.connection())
    queue.enqueue(DISPATCH_JOB)
    queue.enqueue(DISPATCH_JOB)
    env = workers.env(database_url, redis_server.url, smtp_server.port)
    for process in [workers.spawn(env), workers.spawn(env)]:
        workers.wait(process)

    db.session.expire_all()
    assert _statuses() == {"sent": 6}
    ids = smtp_server.message_ids()
    assert len(ids) == 6 and len(set(ids)) == 6, ids
    expected = {mailer.message_id_for(i) for i in
                db.session.execute(select(OutboxMessage.id)).scalars()}
    assert set(ids) == expected

    # Redis is up: a completed application enqueues its dispatch right after the commit.
    response = _apply_over_http(client, headers, in_stock_card("LOA2").serial,
                                demo_person("Nils"))
    assert response.status_code == 201
    assert [job.func_name for job in queue.get_jobs()] == [DISPATCH_JOB]


def test_smtp_down_messages_wait_and_go_out_when_it_returns(app, smtp_server):  # noqa: F811
    _queue_test_mail(2)
    smtp_server.stop()
    now = clock.now()
    assert mailer.dispatch_due(now)["retry"] == 2
    db.session.expire_all()
    rows = db.session.execute(select(OutboxMessage)).scalars().all()
    assert {(m.status, m.attempts) for m in rows} == {("pending", 1)}
    assert all("Connection refused" in m.last_error for m in rows)
    backoff = app.config["OUTBOX_BACKOFF_SECONDS"]
    assert {m.next_attempt_at for m in rows} == {now + timedelta(seconds=backoff)}

    smtp_server.start()
    assert mailer.dispatch_due(now)["sent"] == 0  # not due yet: the backoff is respected
    assert mailer.dispatch_due(now + timedelta(seconds=backoff))["sent"] == 2
    assert mailer.dispatch_due(now + timedelta(days=1))["sent"] == 0
    assert len(smtp_server.messages) == 2
    assert _statuses() == {"sent": 2}


def test_message_is_text_and_html_from_the_configured_sender(app, smtp_server):  # noqa: F811
    _queue_test_mail(1)
    mailer.dispatch_due()
    (message,) = smtp_server.messages
    assert message["From"] == app.config["MAIL_FROM"]
    assert message["To"] == "person0@example.se"
    outbox_id = db.session.execute(select(OutboxMessage.id)).scalar_one()
    assert message["Message-ID"] == mailer.message_id_for(outbox_id)
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == [
        "text/plain", "text/html"]


def test_without_smtp_host_mail_is_written_as_eml_files(app):
    app.config["SMTP_HOST"] = ""
    _queue_test_mail(2)
    assert mailer.dispatch_due()["sent"] == 2
    db.session.expire_all()
    rows = db.session.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars().all()
    assert all(m.status == "sent" and m.sent_at for m in rows)
    mail_dir = app.config["MAIL_DIR"]
    for row in rows:
        path = f"{mail_dir}/{row.id}-receipt_reminder.eml"
        with open(path, "rb") as handle:
            parsed = message_from_bytes(handle.read(), policy=default_policy)
        assert parsed["Subject"] == row.subject
        assert parsed["Message-ID"] == mailer.message_id_for(row.id)


def test_stuck_in_sending_goes_back_to_pending_and_is_sent(app, smtp_server):  # noqa: F811
    _queue_test_mail(1)
    now = clock.now()
    stuck = db.session.execute(select(OutboxMessage)).scalar_one()
    stuck.status, stuck.next_attempt_at = "sending", now + timedelta(minutes=5)  # a live claim
    db.session.commit()
    assert mailer.dispatch_due(now)["sent"] == 0  # another dispatcher holds it
    result = mailer.dispatch_due(now + timedelta(minutes=5))  # its lease ran out: it died
    assert result["recovered"] == 1 and result["sent"] == 1
    assert len(smtp_server.messages) == 1


def test_resend_only_takes_failed_messages(app):
    from app.errors import NotFound, RuleViolation

    _queue_test_mail(1)
    message = db.session.execute(select(OutboxMessage)).scalar_one()
    with pytest.raises(RuleViolation) as refused:
        mailer.resend(message.id)
    assert refused.value.rule == "transition_not_allowed"
    with pytest.raises(NotFound):
        mailer.resend(message.id + 1000)
    assert db.session.execute(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "outbox.resend")).scalar() == 0
