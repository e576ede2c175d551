"""The scheduler: enqueues the jobs of jobs/schedule.py on time.

`python -m jobs.cron --url $REDIS_URL` (production) keeps going through a Redis outage: a tick
that cannot reach Redis is tried again after a growing pause, and the jobs that were due are
enqueued as soon as Redis answers. The module also still works as an `rq cron` table
(`rq cron jobs/cron.py --url ...`), which however exits when Redis goes away.

Running two schedulers by mistake is harmless: the sweeps are idempotent and the outbox claims
each message once.
"""

import argparse
import logging
import sys
import threading

from redis.exceptions import RedisError
from rq import cron

from jobs.queue import QUEUE_NAME
from jobs.schedule import entries, load_config

log = logging.getLogger("reservkort.cron")


def build_scheduler(connection, config, logging_level="WARNING"):
    scheduler = cron.CronScheduler(connection=connection, logging_level=logging_level)
    for entry in entries(config):
        scheduler.register(entry["func"], queue_name=QUEUE_NAME, interval=entry["interval"],
                           job_timeout=entry["job_timeout"])
    return scheduler


def run_scheduler(connection, config, stop: threading.Event, max_backoff: float = 30.0,
                  logging_level: str = "WARNING") -> None:
    """Enqueue the scheduled jobs on time until `stop` is set; ride out Redis outages."""
    from jobs.worker import Backoff

    scheduler = build_scheduler(connection, config, logging_level)
    backoff = Backoff(stop, max_backoff)
    while not stop.is_set():
        try:
            if scheduler.enqueue_jobs():
                scheduler.save()
            scheduler.heartbeat()  # re-registers the scheduler after an outage
        except RedisError as exc:
            log.warning("Redis unavailable (%s); the due jobs are enqueued when it is back",
                        exc.__class__.__name__)
            if not backoff.wait():
                break
            continue
        backoff.reset()
        stop.wait(max(0.5, min(scheduler.calculate_sleep_interval(), 5.0)))
    try:
        scheduler.register_death()
    except RedisError:
        pass


def main(argv=None) -> int:
    from jobs.worker import _handle_stop_signals, connect

    parser = argparse.ArgumentParser(prog="python -m jobs.cron", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="Redis URL, e.g. redis://127.0.0.1:6379/0")
    parser.add_argument("--max-backoff", type=float, default=30.0)
    parser.add_argument("--logging-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.logging_level, format="%(asctime)s %(name)s %(message)s")
    stop = threading.Event()
    _handle_stop_signals(stop)
    run_scheduler(connect(args.url), load_config(), stop, args.max_backoff, args.logging_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
else:  # loaded by `rq cron jobs/cron.py` as its cron table
    for _entry in entries(load_config()):
        cron.register(_entry["func"], queue_name=QUEUE_NAME, interval=_entry["interval"],
                      job_timeout=_entry["job_timeout"])
