"""The embedded set-up behind `make run`: the web app on 127.0.0.1:$PORT with the jobs running
in the same process.

Redis: REDIS_URL if set; otherwise a private `redis-server` (found on PATH) on a free port with
its files under the instance folder; otherwise an in-memory fakeredis. One worker thread runs
the jobs and one scheduler thread enqueues them on the production schedule (jobs/schedule.py).
Ctrl-C stops everything.
"""

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger("reservkort.run")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_redis(connection: Redis, process=None, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            connection.ping()
            return
        except RedisError:
            if process is not None and process.poll() is not None:
                raise RuntimeError("redis-server exited at start") from None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def start_redis(instance_dir: Path):
    """(connection, process or None, description)."""
    url = os.environ.get("REDIS_URL")
    if url:
        return Redis.from_url(url), None, url
    binary = shutil.which("redis-server")
    if binary:
        folder = instance_dir / "redis"
        folder.mkdir(parents=True, exist_ok=True)
        port = free_port()
        process = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder),
             "--save", "", "--appendonly", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
        )
        connection = Redis(host="127.0.0.1", port=port)
        wait_for_redis(connection, process)
        return connection, process, f"redis-server on 127.0.0.1:{port}"
    import fakeredis

    return fakeredis.FakeRedis(), None, "in-memory fakeredis (no redis-server on PATH)"


def worker_loop(connection, stop: threading.Event) -> None:
    """Run queued jobs until stopped, with one worker that stays registered (the health check
    counts it) and moves due scheduled jobs onto the queue. A Redis outage ends a worker at
    worst; a new one starts after a pause."""
    from jobs.queue import QUEUE_NAME
    from jobs.worker import Backoff, EmbeddedWorker

    backoff = Backoff(stop, maximum=30.0, first=1.0)
    while not stop.is_set():
        started = time.monotonic()
        try:
            EmbeddedWorker([QUEUE_NAME], connection=connection, stop=stop).work(
                logging_level="WARNING")
        except RedisError as exc:
            log.warning("Redis unavailable (%s); the worker waits", exc.__class__.__name__)
        except Exception:  # a broken job run must not end the runner
            log.exception("worker failed")
        if time.monotonic() - started > 30:
            backoff.reset()
        backoff.wait()


def scheduler_loop(connection, config, stop: threading.Event) -> None:
    """Enqueue the scheduled jobs on time (the production scheduler, without its signal
    handling), riding out Redis outages."""
    from jobs.cron import run_scheduler

    run_scheduler(connection, config, stop)


def serve(flask_app, port: int) -> None:
    try:
        from waitress import serve as waitress_serve
    except ImportError:
        from werkzeug.serving import run_simple

        run_simple("127.0.0.1", port, flask_app, threaded=True, use_reloader=False)
        return
    waitress_serve(flask_app, host="127.0.0.1", port=port, threads=8)


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM both end the server, even where SIGINT was inherited as ignored."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, interrupt)


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    log.setLevel(logging.INFO)
    # This is the embedded set-up: it makes its own secret key under the instance folder.
    os.environ.setdefault("RESERVKORT_EMBEDDED", "1")
    from app import create_app
    from jobs import context
    from jobs.queue import EXTENSION_KEY, install

    flask_app = create_app()
    connection, redis_process, redis_text = start_redis(Path(flask_app.config["INSTANCE_DIR"]))
    flask_app.extensions[EXTENSION_KEY] = connection
    install(flask_app)  # harmless if the config already installs it
    context.use_app(flask_app)

    stop = threading.Event()
    threads = [
        threading.Thread(target=worker_loop, args=(connection, stop), name="rq-worker",
                         daemon=True),
        threading.Thread(target=scheduler_loop, args=(connection, flask_app.config, stop),
                         name="rq-schedule", daemon=True),
    ]
    for thread in threads:
        thread.start()
    _stop_on_signals()
    port = int(os.environ.get("PORT", "5000"))
    log.info("Reservkort on http://127.0.0.1:%s (jobs in-process, %s)", port, redis_text)
    try:
        serve(flask_app, port)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
        if redis_process is not None:
            redis_process.terminate()
            try:
                redis_process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                redis_process.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
