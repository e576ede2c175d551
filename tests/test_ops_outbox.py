"""The outbox under load and errors: a claim takes at most its limit and belongs to one
dispatcher, refused recipients are handled one by one, bad addresses are refused when the mail
is queued, permanent errors fail at once, retries run at their due time, a job timeout is not
recorded as a delivery failure, and at most one dispatch job waits at a time."""

import time
from datetime import timedelta
from types import SimpleNamespace

import pytest
from rq import Queue
from rq.job import Job
from sqlalchemy import func, insert, select, update

from app import clock, mailer
from app.errors import RuleViolation
from app.extensions import db
from app.outbox import queue_email
from jobs import tasks
from jobs.queue import DISPATCH_JOB, QUEUE_NAME, get_queue
from models import OutboxMessage
from tests.job_support import redis_server, smtp_server, wait_until, workers  # noqa: F401

pytestmark = pytest.mark.usefixtures("smtp_server")


@pytest.fixture
def app_config(redis_server, smtp_server):  # noqa: F811
    return {"REDIS_URL": redis_server.url, "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": smtp_server.port}


@pytest.fixture
def jobs_in_app(app):
    """Jobs called directly in the test run in the test's app."""
    from jobs import context

    context.use_app(app)
    yield
    context._state.update(app=None, pid=None)


def _mail(to, number=0):
    return queue_email("receipt_reminder", to, {
        "card": SimpleNamespace(serial=f"70000{number}"),
        "recipient": SimpleNamespace(name=f"Person {number}"),
        "issuance": SimpleNamespace(receipt_due="2026-05-04")})


def _statuses():
    db.session.expire_all()
    return dict(db.session.execute(select(OutboxMessage.status, func.count())
                                   .group_by(OutboxMessage.status)).all())


def _backlog(count, now):
    db.session.execute(insert(OutboxMessage), [
        {"template": "receipt_reminder", "to_addrs": f"p{n}@example.se", "subject": f"S {n}",
         "body_text": "text", "status": "pending", "attempts": 0, "next_attempt_at": now,
         "created_at": now} for n in range(count)])
    db.session.commit()


@pytest.mark.both_databases
def test_a_claim_takes_at_most_its_limit_from_a_large_backlog(app, dialect):
    app.config["SMTP_HOST"] = ""  # .eml files: only the claim is under test
    now = clock.now()
    _backlog(400, now)
    counts = mailer.dispatch_due(now, limit=100)
    assert counts["sent"] == 100
    assert _statuses() == {"sent": 100, "pending": 300}


@pytest.mark.both_databases
def test_only_the_owner_of_a_claim_marks_it_sent(app, dialect):
    now = clock.now()
    _backlog(1, now)
    (message_id,) = mailer._claim(now, 10, "first-dispatcher")
    # Its lease ran out and another dispatcher took the row over.
    db.session.execute(update(OutboxMessage).values(claim_token="second-dispatcher"))
    db.session.commit()
    mailer._mark_sent(message_id, "first-dispatcher", ["p0@example.se"])
    assert _statuses() == {"sending": 1}
    mailer._mark_sent(message_id, "second-dispatcher", ["p0@example.se"])
    assert _statuses() == {"sent": 1}


def test_an_address_without_at_sign_is_refused_when_queued(app):
    with pytest.raises(RuleViolation) as refused:
        _mail(["anna@example.se", "lars.example.se"])
    assert refused.value.rule == "email_address_invalid"
    assert refused.value.field == "email"
    assert "lars.example.se" in refused.value.message
    db.session.rollback()
    assert _statuses() == {}


def test_a_refused_recipient_is_recorded_and_retried_on_its_own(app, smtp_server):  # noqa: F811
    smtp_server.handler.rcpt_replies = {"gone@example.se": "550 5.1.1 No such user",
                                        "full@example.se": "452 4.2.2 Mailbox full"}
    _mail(["anna@example.se", "gone@example.se", "full@example.se"])
    db.session.commit()
    now = clock.now()
    assert mailer.dispatch_due(now)["retry"] == 1
    message = db.session.execute(select(OutboxMessage)).scalar_one()
    assert message.status == "pending"
    assert message.recipient_results["anna@example.se"] == {"status": "sent"}
    assert message.recipient_results["gone@example.se"]["status"] == "failed"
    assert message.recipient_results["gone@example.se"]["code"] == 550
    assert message.recipient_results["full@example.se"]["status"] == "refused"
    assert "452" in message.last_error and "550" in message.last_error

    smtp_server.handler.rcpt_replies = {}  # the mailbox has room again
    later = now + timedelta(seconds=app.config["OUTBOX_BACKOFF_SECONDS"])
    mailer.dispatch_due(later)
    assert [rcpts for _, rcpts in smtp_server.handler.deliveries] == [
        ["anna@example.se"], ["full@example.se"]]  # nobody got it twice, "gone" never
    db.session.expire_all()
    message = db.session.execute(select(OutboxMessage)).scalar_one()
    assert message.recipient_results["full@example.se"] == {"status": "sent"}
    # One recipient never got it: the message shows as failed, with the reason.
    assert message.status == "failed" and "gone@example.se: 550" in message.last_error


def test_all_recipients_refused_for_good_fails_at_once(app, smtp_server):  # noqa: F811
    smtp_server.handler.rcpt_replies = {"gone@example.se": "550 5.1.1 No such user"}
    _mail("gone@example.se")
    db.session.commit()
    assert mailer.dispatch_due()["failed"] == 1
    message = db.session.execute(select(OutboxMessage)).scalar_one()
    assert (message.status, message.attempts) == ("failed", 1)
    assert "550" in message.last_error and "No such user" in message.last_error


def test_a_permanent_error_fails_at_once_with_the_reason(app, smtp_server):  # noqa: F811
    smtp_server.handler.data_reply = "554 5.6.0 Message content rejected"
    _mail("anna@example.se")
    db.session.commit()
    assert mailer.dispatch_due()["failed"] == 1
    message = db.session.execute(select(OutboxMessage)).scalar_one()
    assert (message.status, message.attempts) == ("failed", 1)
    assert message.last_error.startswith("permanent:") and "Message content rejected" in (
        message.last_error)


def test_bad_headers_fail_at_once(app, smtp_server):  # noqa: F811
    _mail("anna@example.se")
    db.session.commit()
    db.session.execute(update(OutboxMessage).values(subject="Kvitto\nBcc: x@example.se"))
    db.session.commit()
    assert mailer.dispatch_due()["failed"] == 1
    message = db.session.execute(select(OutboxMessage)).scalar_one()
    assert (message.status, message.attempts) == ("failed", 1)
    assert message.last_error.startswith("permanent:")
    assert smtp_server.messages == []


def test_a_temporary_error_is_scheduled_for_its_due_time(app, jobs_in_app, smtp_server,  # noqa: F811
                                                        redis_server):  # noqa: F811
    smtp_server.handler.data_reply = "451 4.3.0 Try again later"
    _mail("anna@example.se")
    db.session.commit()
    result = tasks.dispatch_outbox()
    assert result["retry"] == 1
    message = db.session.execute(select(OutboxMessage)).scalar_one()
    assert message.status == "pending" and message.last_error.startswith("temporary:")
    registry = get_queue().scheduled_job_registry
    (job_id,) = registry.get_job_ids()
    scheduled = registry.get_scheduled_time(job_id)
    due = message.next_attempt_at
    assert abs(scheduled.replace(tzinfo=None) - due).total_seconds() < 1.0
    # Never before it is due: a job that fired early would find nothing to send.
    assert scheduled.replace(tzinfo=None) >= due
    assert Job.fetch(job_id, connection=redis_server.connection()).func_name == DISPATCH_JOB
    tasks.dispatch_outbox()  # still failing: the same due time is not scheduled twice
    assert len(registry.get_job_ids()) <= 2


def test_many_commits_leave_one_waiting_dispatch_job(app, jobs_in_app, redis_server):  # noqa: F811
    for number in range(5):
        _mail(f"person{number}@example.se", number)
        db.session.commit()
    queue = Queue(QUEUE_NAME, connection=redis_server.connection())
    assert [job.func_name for job in queue.get_jobs()] == [DISPATCH_JOB]
    tasks.dispatch_outbox()  # the job starts: mail queued after this needs a new one
    queue.empty()
    _mail("late@example.se", 9)
    db.session.commit()
    assert [job.func_name for job in queue.get_jobs()] == [DISPATCH_JOB]


def test_the_job_timeout_is_not_recorded_against_a_message(
        app, database_url, redis_server, smtp_server, workers):  # noqa: F811
    _mail("anna@example.se")
    _mail("lars@example.se", 1)
    db.session.commit()
    queue = Queue(QUEUE_NAME, connection=redis_server.connection())
    queue.empty()
    smtp_server.handler.hold()  # the first delivery hangs until the job's time is up
    job = queue.enqueue(DISPATCH_JOB, job_timeout=3)
    env = workers.env(database_url, redis_server.url, smtp_server.port)
    started = time.monotonic()
    workers.wait(workers.spawn(env), seconds=60)
    assert time.monotonic() - started < 40
    assert job.get_status(refresh=True) == "failed"
    assert "JobTimeoutException" in job.latest_result().exc_string
    db.session.expire_all()
    rows = db.session.execute(select(OutboxMessage)).scalars().all()
    # Nothing was tried to the end: no attempt used, no delivery error, free to send again.
    assert {(m.status, m.attempts, m.last_error, m.claim_token) for m in rows} == {
        ("pending", 0, None, None)}
    wait_until(lambda: True)



def test_a_bad_address_in_bulk_mail_is_left_out_and_the_others_are_queued(app, caplog):
    # A sweep's e-mails follow changes already made: one bad address must not stop them.
    from app.outbox import queue_many

    def context(number):
        return {"card": SimpleNamespace(serial=f"70000{number}"),
                "recipient": SimpleNamespace(name=f"Person {number}"),
                "issuance": SimpleNamespace(receipt_due="2026-05-04")}

    messages = [("receipt_reminder", "lars.example.se", context(1), "bulk:1", None),
                ("receipt_reminder", "anna@example.se", context(2), "bulk:2", None)]
    with pytest.raises(RuleViolation):  # a step of a person's: refused, as one e-mail is
        queue_many(messages)
    written = queue_many(messages, skip_invalid=True)
    assert written == 1
    assert db.session.execute(select(OutboxMessage.to_addrs)).scalars().all() == [
        "anna@example.se"]
    assert "rule=email_address_invalid" in caplog.text


def test_a_sweeps_many_emails_check_each_address_and_make_each_context_once(app, monkeypatch):
    """Queueing a sweep's e-mails costs what the messages cost: an address written to again
    (the same attester, the same manager) is checked once, and each message's template
    context is made once for its subject, text and HTML."""
    from app import outbox

    checked, contexts = [], []
    real_validate = outbox.validate_email

    def validate(address, **kwargs):
        checked.append(address)
        return real_validate(address, **kwargs)

    monkeypatch.setattr(outbox, "validate_email", validate)
    app.template_context_processors[None].append(lambda: contexts.append(1) or {})
    try:
        messages = [("receipt_reminder", ["once.attester@example.se", f"once.person{n}@example.se"],
                     {"card": SimpleNamespace(serial=f"80000{n}"),
                      "recipient": SimpleNamespace(name=f"Person {n}"),
                      "issuance": SimpleNamespace(receipt_due="2026-05-04")},
                     f"bulk-once:{n}", None) for n in range(3)]
        assert outbox.queue_many(messages) == 3
    finally:
        app.template_context_processors[None].pop()
    assert sorted(checked) == ["once.attester@example.se", *(f"once.person{n}@example.se"
                                                         for n in range(3))]
    assert len(contexts) == 3
    subjects = db.session.execute(select(OutboxMessage.subject)).scalars().all()
    assert len(subjects) == 3 and all(subject.strip() == subject for subject in subjects)
