"""The Redis connection, the queue, and starting dispatch right after a commit that queued mail.

Redis holds only work in flight. When it cannot be reached the enqueue is skipped (and logged):
the request that queued the mail still succeeds, and the periodic catch-up sends the mail.
"""

from flask import current_app
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry

QUEUE_NAME = "reservkort"
DISPATCH_JOB = "jobs.tasks.dispatch_outbox"
SWEEP_JOB = "jobs.tasks.run_sweeps"
EXTENSION_KEY = "reservkort_redis"  # app.extensions key for a connection given by the runner

_by_url: dict[str, Redis] = {}


def redis_connection(flask_app=None) -> Redis | None:
    """The app's Redis connection, or None when none is configured."""
    flask_app = flask_app or current_app
    given = flask_app.extensions.get(EXTENSION_KEY)
    if given is not None:
        return given
    url = flask_app.config.get("REDIS_URL")
    if not url:
        return None
    if url not in _by_url:
        # Short timeouts: a request must never hang on a Redis that is down.
        _by_url[url] = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    return _by_url[url]


def get_queue(flask_app=None) -> Queue | None:
    connection = redis_connection(flask_app)
    return Queue(QUEUE_NAME, connection=connection) if connection is not None else None


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
