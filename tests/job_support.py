"""Real services for the job tests: a redis-server and an SMTP server (aiosmtpd) on loopback, each
started by the test on a free port and stopped by it, and `rq worker` subprocesses that are always
killed at the end.

Import the fixtures explicitly: `from tests.job_support import redis_server, smtp_server`.
"""

import asyncio
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from redis import Redis
from redis.exceptions import RedisError

ROOT = Path(__file__).resolve().parent.parent
RQ = str(Path(sys.executable).with_name("rq"))
# The workers start with the production configuration, which needs a real key.
SECRET_KEY = secrets.token_urlsafe(48)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(predicate, seconds=20.0, what="condition"):
    """Poll `predicate` until it is true; fail naming `what` after the deadline."""
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class RedisServer:
    """A private redis-server; stop() and start() simulate an outage on the same port."""

    def __init__(self, folder: Path):
        binary = shutil.which("redis-server")
        if not binary:
            raise RuntimeError("redis-server is not on PATH: the job tests need a real Redis")
        self.binary = binary
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir",
             str(self.folder), "--save", "", "--appendonly", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
        )
        wait_until(self._answers, 10, "redis-server to start")

    def _answers(self):
        if self.process.poll() is not None:
            raise RuntimeError(f"redis-server on port {self.port} exited at start")
        try:
            return Redis.from_url(self.url, socket_connect_timeout=0.5).ping()
        except RedisError:
            return False

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def connection(self) -> Redis:
        return Redis.from_url(self.url)


class CollectingHandler:
    """Keeps every accepted message. `hold()` makes the server stall at MAIL FROM until
    `release()`, so a test can kill a sender in the middle of a delivery."""

    def __init__(self):
        self.messages = []
        self.deliveries = []  # (Message-ID, [accepted recipients]) per accepted message
        self.holding = threading.Event()
        self.stalled = threading.Event()
        self._released = None
        self.rcpt_replies = {}  # address -> reply, e.g. "550 5.1.1 No such user"
        self.data_reply = None  # e.g. "554 5.6.0 Message rejected"
        self.delay = 0.0  # seconds before answering DATA: a slow server

    def hold(self):
        self.holding.set()

    def release(self):
        self.holding.clear()
        if self._released is not None:
            self._loop.call_soon_threadsafe(self._released.set)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.holding.is_set():
            self._loop = asyncio.get_running_loop()
            self._released = asyncio.Event()
            self.stalled.set()
            await self._released.wait()
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.rcpt_replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.data_reply:
            return self.data_reply
        message = message_from_bytes(envelope.content, policy=default_policy)
        self.messages.append(message)
        self.deliveries.append((str(message["Message-ID"]), list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"

    def message_ids(self):
        return [str(message["Message-ID"]) for message in self.messages]


class SmtpServer:
    def __init__(self):
        self.port = free_port()
        self.handler = CollectingHandler()
        self.controller = None

    def start(self):
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self):
        if self.controller is not None:
            self.handler.release()
            self.controller.stop()
            self.controller = None

    @property
    def messages(self):
        return self.handler.messages

    def message_ids(self):
        return self.handler.message_ids()


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def smtp_server():
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


class Workers:
    """`rq worker` subprocesses for one test; every one is killed at teardown."""

    def __init__(self, instance: Path):
        self.instance = instance
        self.processes = []

    def env(self, database_url, redis_url, smtp_port=None, **extra):
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "RESERVKORT_INSTANCE": str(self.instance),
            "FAB_UPDATE_PERMS": "false",
            "SECRET_KEY": SECRET_KEY,
            "SMTP_HOST": "127.0.0.1" if smtp_port else "",
            "SMTP_PORT": str(smtp_port or 25),
        }
        env.pop("RESERVKORT_CONFIG", None)
        env.update({key: str(value) for key, value in extra.items()})
        return env

    def spawn(self, env, burst=True, worker_class="jobs.worker.AppWorker"):
        command = [RQ, "worker", "--url", env["REDIS_URL"], "--worker-class", worker_class,
                   "--logging_level", "WARNING", "reservkort"]
        if burst:
            command.insert(2, "--burst")
        process = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def wait(self, process, seconds=45):
        try:
            output, _ = process.communicate(timeout=seconds)
        except subprocess.TimeoutExpired:
            self.kill(process)
            raise AssertionError("an rq worker did not finish in time") from None
        assert process.returncode == 0, output.decode(errors="replace")
        return output.decode(errors="replace")

    @staticmethod
    def children(pid):
        path = Path(f"/proc/{pid}/task/{pid}/children")
        return [int(child) for child in path.read_text().split()] if path.exists() else []

    def kill(self, process):
        """SIGKILL the worker and its work-horses, as if the machine lost them (the worker
        first, so that it cannot notice its horse dying and handle the job itself)."""
        for pid in [process.pid, *self.children(process.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait(timeout=10)

    def close(self):
        for process in self.processes:
            if process.poll() is None:
                self.kill(process)
            for stream in (process.stdout, process.stderr):
                if stream:
                    stream.close()


@pytest.fixture
def workers(tmp_path):
    pool = Workers(tmp_path / "worker-instance")
    yield pool
    pool.close()
