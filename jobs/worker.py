"""Worker classes, and the worker process that survives a Redis outage.

`AppWorker` builds the app once before forking, so each job does not pay for create_app.
`ThreadWorker` runs inside the embedded runner's thread: no signal handlers (only the main thread
may set them) and a timer instead of SIGALRM for job timeouts. `EmbeddedWorker` is the one
`make run` keeps running: registered (and so counted as live) for as long as it runs.

`python -m jobs.worker --url $REDIS_URL` (production) runs an `AppWorker` on the queue
`reservkort` with rq's scheduler (jobs enqueued for a later time, such as an e-mail retry at its
due time). `rq worker` exits when Redis goes away; this process instead waits with a growing
pause (up to `--max-backoff` seconds) and starts a fresh worker once Redis answers again.
SIGTERM or Ctrl-C stops it (a job in progress is finished first, as with `rq worker`).
"""

import argparse
import logging
import signal
import sys
import threading
import time

from redis import Redis
from redis.exceptions import RedisError
from rq.scheduler import RQScheduler
from rq.timeouts import TimerDeathPenalty
from rq.worker import SimpleWorker, Worker

from jobs import context

log = logging.getLogger("reservkort.worker")

QUEUE_NAME = "reservkort"
# A worker that ran this long before failing was healthy: start the next pause from the bottom.
HEALTHY_SECONDS = 30.0


class Reregistering:
    """rq keeps an idle worker waiting through a Redis outage, but a Redis that comes back
    empty no longer lists it: register again at the first heartbeat that finds the
    registration gone, so the worker counts as live (health check, Jobs screen)."""

    def heartbeat(self, timeout=None, pipeline=None):
        if (pipeline is None and self.birth_date is not None
                and not self.connection.exists(self.key)):
            log.warning("worker %s: registration lost (Redis restarted?); registering again",
                        self.name)
            self.register_birth()
        return super().heartbeat(timeout, pipeline)


class AppWorker(Reregistering, Worker):
    def work(self, *args, **kwargs):
        context.get_app()
        return super().work(*args, **kwargs)


class ThreadWorker(Reregistering, SimpleWorker):
    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self):
        return None


class EmbeddedWorker(ThreadWorker):
    """A long-running worker thread that wakes every `poll_seconds` while idle: to notice
    `stop`, and to move jobs scheduled for a time now past (an e-mail retry at its due time)
    onto the queue, as rq's scheduler would (that one is a forked process, unfit for a thread
    in the web server's process). A burst worker per pass instead would be registered only
    while busy, and the health check would see no live worker most of the time."""

    def __init__(self, *args, stop: threading.Event, poll_seconds: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        self.stop, self.poll_seconds = stop, poll_seconds

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        while not self.stop.is_set():
            self.enqueue_due_scheduled_jobs()
            result = super().dequeue_job_and_maintain_ttl(timeout, self.poll_seconds)
            if result is not None:
                return result
        return None  # rq's loop then ends the worker and registers its death

    def enqueue_due_scheduled_jobs(self):
        scheduler = RQScheduler(self.queues, connection=self.connection,
                                logging_level="WARNING")
        scheduler.acquire_locks()
        if scheduler.acquired_locks:
            try:
                scheduler.enqueue_scheduled_jobs()
            finally:
                scheduler.release_locks()


class Backoff:
    """Pauses of 0.5 s, 1 s, 2 s ... up to `maximum`, interrupted by `stop`."""

    def __init__(self, stop: threading.Event, maximum: float = 30.0, first: float = 0.5):
        self.stop, self.maximum, self.first = stop, maximum, first
        self.delay = first

    def reset(self):
        self.delay = self.first

    def wait(self) -> bool:
        """Pause; False when a stop was asked for meanwhile."""
        self.stop.wait(self.delay)
        self.delay = min(self.delay * 2, self.maximum)
        return not self.stop.is_set()


def connect(url: str) -> Redis:
    # A health check before reuse: a connection from before an outage is not trusted blindly.
    return Redis.from_url(url, socket_connect_timeout=5, health_check_interval=15)


def run_worker(url: str, queue_names=(QUEUE_NAME,), worker_class=AppWorker,
               stop: threading.Event | None = None, with_scheduler: bool = True,
               max_backoff: float = 30.0, logging_level: str = "WARNING") -> int:
    """Run workers one after the other until stopped: whenever one ends because Redis went
    away (or any other failure), pause and start a new one."""
    stop = stop or threading.Event()
    backoff = Backoff(stop, max_backoff)
    while not stop.is_set():
        started = time.monotonic()
        worker = None
        try:
            connection = connect(url)
            connection.ping()
            worker = worker_class(list(queue_names), connection=connection)
            worker.work(with_scheduler=with_scheduler, logging_level=logging_level)
        except RedisError as exc:
            log.warning("Redis unavailable (%s); retrying in %.1f s", exc.__class__.__name__,
                        backoff.delay)
        except Exception:
            log.exception("worker failed; retrying in %.1f s", backoff.delay)
        else:
            if getattr(worker, "_stop_requested", False):
                return 0  # SIGTERM / Ctrl-C: rq stopped the worker on request
            log.warning("worker ended (Redis unavailable?); restarting in %.1f s",
                        backoff.delay)
        if worker is not None:
            _stop_scheduler(worker)
        _handle_stop_signals(stop)  # rq's handlers belong to the worker that ended
        if time.monotonic() - started > HEALTHY_SECONDS:
            backoff.reset()
        if not backoff.wait():
            break
    return 0


def _stop_scheduler(worker) -> None:
    try:
        worker.stop_scheduler()
    except Exception:  # its process or Redis is already gone
        log.debug("scheduler of the ended worker not stopped", exc_info=True)


def _handle_stop_signals(stop: threading.Event) -> None:
    if threading.current_thread() is not threading.main_thread():
        return

    def request_stop(signum, frame):
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, request_stop)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.worker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="Redis URL, e.g. redis://127.0.0.1:6379/0")
    parser.add_argument("--max-backoff", type=float, default=30.0)
    parser.add_argument("--logging-level", default="WARNING")
    parser.add_argument("queues", nargs="*", default=[QUEUE_NAME])
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.logging_level, format="%(asctime)s %(name)s %(message)s")
    return run_worker(args.url, args.queues, max_backoff=args.max_backoff,
                      logging_level=args.logging_level)


if __name__ == "__main__":
    sys.exit(main())
