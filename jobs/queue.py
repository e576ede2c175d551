"""Enqueueing the jobs, and starting dispatch right after a commit that queued mail (the Redis
connection and the queue itself are in app.queues).

Redis holds only work in flight. When it cannot be reached the enqueue is skipped (and logged):
the request that queued the mail still succeeds, and the periodic catch-up sends the mail.

At most one dispatch job waits at a time: a short-lived Redis key marks "a dispatch is queued"
(set with NX by the enqueuer, cleared by the job when it starts), so a thousand commits with the
workers down leave one job, not a thousand. Retries are scheduled for their due time
(`schedule_dispatch_at`, run by the workers' scheduler), one job per due second, never before
the message is due.
"""

from datetime import UTC, datetime, timedelta

from flask import current_app
from redis.exceptions import RedisError
from rq import Retry

from app.queues import EXTENSION_KEY, QUEUE_NAME, get_queue, redis_connection

DISPATCH_JOB = "jobs.tasks.dispatch_outbox"
SWEEP_JOB = "jobs.tasks.run_sweeps"

__all__ = ["DISPATCH_JOB", "DISPATCH_PENDING_KEY", "EXTENSION_KEY", "QUEUE_NAME", "SWEEP_JOB",
           "dispatch_started", "enqueue_dispatch", "get_queue", "install", "redis_connection",
           "schedule_dispatch_at"]

DISPATCH_PENDING_KEY = "reservkort:dispatch:pending"
DISPATCH_PENDING_TTL = 600  # a lost job (Redis flushed) frees the mark after this long
_JOB_OPTIONS = {"job_timeout": 600, "result_ttl": 3600, "failure_ttl": 7 * 24 * 3600}


def enqueue_dispatch():
    """Ask a worker to send the outbox now. Returns the job; None if one is already waiting
    (it will send this mail too) or Redis is unavailable."""
    queue = get_queue()
    if queue is None:
        return None
    try:
        if not queue.connection.set(DISPATCH_PENDING_KEY, "1", nx=True,
                                    ex=DISPATCH_PENDING_TTL):
            return None
        # Retry: a job whose worker died mid-run is run again once the registry notices.
        return queue.enqueue(DISPATCH_JOB, retry=Retry(max=3), **_JOB_OPTIONS)
    except RedisError as exc:
        current_app.logger.warning("e-mail dispatch not enqueued (Redis unavailable): %s",
                                   exc.__class__.__name__)
        return None


def dispatch_started() -> None:
    """Called by the dispatch job as it starts: mail queued from now on needs a new job."""
    connection = redis_connection()
    if connection is None:
        return
    try:
        connection.delete(DISPATCH_PENDING_KEY)
    except RedisError:
        pass


def schedule_dispatch_at(moment: datetime):
    """A dispatch at `moment` (naive UTC), for a retry that falls due then. One job per second
    of due time; None if it is already scheduled or Redis is unavailable."""
    queue = get_queue()
    if queue is None or moment is None:
        return None
    # Rounded up to the second: a job that fired before its message was due would find
    # nothing to send, and could not schedule itself again (its own id is taken).
    moment = moment.replace(tzinfo=UTC)
    if moment.microsecond:
        moment = moment.replace(microsecond=0) + timedelta(seconds=1)
    job_id = f"reservkort-dispatch-at-{int(moment.timestamp())}"
    try:
        if queue.job_class.exists(job_id, connection=queue.connection):
            return None
        return queue.enqueue_at(moment, DISPATCH_JOB, job_id=job_id, retry=Retry(max=3),
                                **_JOB_OPTIONS)
    except RedisError as exc:
        current_app.logger.warning("e-mail retry not scheduled (Redis unavailable): %s",
                                   exc.__class__.__name__)
        return None


def _after_mail_commit() -> None:
    enqueue_dispatch()


def install(flask_app) -> None:
    """App hook (RESERVKORT_APP_HOOKS): enqueue dispatch after each commit that queued mail."""
    from app.outbox import on_mail_committed

    on_mail_committed(_after_mail_commit)
