"""The job queue in Redis: the connection, the queue, its health, and requeuing a failed job.

Redis holds only work in flight; the database is the record. Jobs (jobs.queue) enqueue on it
and the administration screen reads its health here.
"""

from flask import current_app
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.registry import FailedJobRegistry

QUEUE_NAME = "reservkort"
EXTENSION_KEY = "reservkort_redis"  # app.extensions key for a connection given by the runner

_by_url: dict[str, Redis] = {}


class QueueUnavailable(Exception):
    """No queue is configured (`configured` False), or Redis cannot be reached."""

    def __init__(self, message: str = "", configured: bool = True):
        self.configured = configured
        super().__init__(message)


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


def queue_health(failed_shown: int = 50) -> dict:
    """Lengths of the queue's registries and its latest failed jobs (id, func, ended_at, error);
    `configured` False without a queue, `error` when Redis cannot be reached."""
    queue = get_queue()
    if queue is None:
        return {"configured": False}
    try:
        failed = FailedJobRegistry(queue=queue)
        jobs = queue.job_class.fetch_many(failed.get_job_ids(0, failed_shown - 1),
                                          connection=queue.connection)
        return {
            "configured": True,
            "counts": {
                "queued": queue.count,
                "started": queue.started_job_registry.count,
                "scheduled": queue.scheduled_job_registry.count,
                "failed": failed.count,
            },
            "failed_jobs": [_failed_job(job) for job in jobs if job is not None],
        }
    except RedisError as exc:
        return {"configured": True, "error": str(exc)}


def _failed_job(job) -> dict:
    result = job.latest_result()
    error = result.exc_string if result is not None and result.exc_string else ""
    return {"id": job.id, "func": job.func_name, "ended_at": job.ended_at, "error": error}


def requeue_failed(job_id) -> bool:
    """Put a failed job back on the queue; False when it is no longer among the failed jobs."""
    queue = get_queue()
    if queue is None:
        raise QueueUnavailable(configured=False)
    try:
        FailedJobRegistry(queue=queue).requeue(job_id)
    except (NoSuchJobError, InvalidJobOperation):
        return False
    except RedisError as exc:
        raise QueueUnavailable(str(exc)) from exc
    return True
