"""Enqueueing the jobs, and starting dispatch right after a commit that queued mail (the Redis
connection and the queue itself are in app.queues).

Redis holds only work in flight. When it cannot be reached the enqueue is skipped (and logged):
the request that queued the mail still succeeds, and the periodic catch-up sends the mail.
"""

from flask import current_app
from redis.exceptions import RedisError
from rq import Retry

from app.queues import EXTENSION_KEY, QUEUE_NAME, get_queue, redis_connection

DISPATCH_JOB = "jobs.tasks.dispatch_outbox"
SWEEP_JOB = "jobs.tasks.run_sweeps"

__all__ = ["DISPATCH_JOB", "EXTENSION_KEY", "QUEUE_NAME", "SWEEP_JOB", "enqueue_dispatch",
           "get_queue", "install", "redis_connection"]


def enqueue_dispatch():
    """Ask a worker to send the outbox now. Returns the job, or None if Redis is unavailable."""
    queue = get_queue()
    if queue is None:
        return None
    try:
        # Retry: a job whose worker died mid-run is run again once the registry notices.
        return queue.enqueue(DISPATCH_JOB, retry=Retry(max=3), job_timeout=600,
                             result_ttl=3600, failure_ttl=7 * 24 * 3600)
    except RedisError as exc:
        current_app.logger.warning("e-mail dispatch not enqueued (Redis unavailable): %s", exc)
        return None


def _after_mail_commit() -> None:
    enqueue_dispatch()


def install(flask_app) -> None:
    """App hook (RESERVKORT_APP_HOOKS): enqueue dispatch after each commit that queued mail."""
    from app.outbox import on_mail_committed

    on_mail_committed(_after_mail_commit)
