"""Loopback HTTP server: Server-Sent Events at ``/events``, JSON at ``/status``.

Standard library only. CORS is granted to the configured back-office
origin(s) alone; other origins get answers without
``Access-Control-Allow-Origin`` so the browser keeps them from reading.
Private Network Access preflights (``Access-Control-Request-Private-Network``)
are answered for allowed origins. The Host header must name the loopback
address, which defeats DNS-rebinding pages.
"""

from __future__ import annotations

import itertools
import json
import logging
import queue
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
KEEPALIVE_SECONDS = 15.0
QUEUE_SIZE = 256


def format_sse(event: str, data: dict, event_id: int | None = None) -> bytes:
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"event: {event}")
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    lines.extend(f"data: {line}" for line in payload.splitlines() or [""])
    return ("\n".join(lines) + "\n\n").encode("utf-8")


class EventHub:
    """Broadcasts events to every connected SSE client (one queue each)."""

    def __init__(self, status: Callable[[], dict] | None = None) -> None:
        self._status = status or (lambda: {})
        self._clients: set[queue.Queue] = set()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._closed = False

    def set_status_provider(self, status: Callable[[], dict]) -> None:
        self._status = status

    def status(self) -> dict:
        return self._status()

    def subscribe(self) -> queue.Queue:
        q: queue.Queue = queue.Queue(QUEUE_SIZE)
        with self._lock:
            # the current status first, under the lock so no event slips in before it
            q.put_nowait(format_sse("status", self._status(), next(self._ids)))
            if self._closed:
                q.put_nowait(None)
            self._clients.add(q)
        return q

    def unsubscribe(self, q: queue.Queue) -> None:
        with self._lock:
            self._clients.discard(q)

    @property
    def client_count(self) -> int:
        with self._lock:
            return len(self._clients)

    def publish(self, event: str, data: dict) -> None:
        with self._lock:
            message = format_sse(event, data, next(self._ids))
            for q in list(self._clients):
                try:
                    q.put_nowait(message)
                except queue.Full:  # a client that does not read: drop it
                    self._clients.discard(q)
                    _put_close(q)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for q in self._clients:
                _put_close(q)
            self._clients.clear()


def _put_close(q: queue.Queue) -> None:
    try:
        q.put_nowait(None)
    except queue.Full:
        try:
            q.get_nowait()
            q.put_nowait(None)
        except (queue.Empty, queue.Full):  # pragma: no cover
            pass


class BridgeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, port: int, hub: EventHub, origins: Iterable[str], host: str = "127.0.0.1"
    ) -> None:
        if host not in ("127.0.0.1", "::1") and not host.startswith("127."):
            raise ValueError("the reader bridge only listens on the loopback interface")
        self.hub = hub
        self.origins = {o.rstrip("/") for o in origins if o}
        self.keepalive = KEEPALIVE_SECONDS
        super().__init__((host, port), BridgeHandler)


class BridgeHandler(BaseHTTPRequestHandler):
    server: BridgeHTTPServer
    server_version = "ReservkortReaderBridge/1.0"
    protocol_version = "HTTP/1.0"

    # -- helpers -----------------------------------------------------------
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s - %s", self.address_string(), format % args)

    def _origin_allowed(self) -> str | None:
        origin = self.headers.get("Origin")
        if origin and origin.rstrip("/") in self.server.origins:
            return origin
        return None

    def _host_ok(self) -> bool:
        host = (self.headers.get("Host") or "").strip().lower()
        if not host:
            return True  # HTTP/1.0 client without Host
        if host.startswith("["):
            name = host.split("]")[0] + "]"
        else:
            name = host.rsplit(":", 1)[0] if ":" in host else host
        return name in LOOPBACK_HOSTS or name.startswith("127.")

    def _cors_headers(self) -> None:
        origin = self._origin_allowed()
        if origin:
            self.send_header("Access-Control-Allow-Origin", origin)
        self.send_header("Vary", "Origin")

    def _send_json(self, code: int, data: dict) -> None:
        body = json.dumps(data, ensure_ascii=False).encode("utf-8")
        self.send_response(code)
        self._cors_headers()
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _guard(self) -> bool:
        if self._host_ok():
            return True
        self._send_json(403, {"error": "forbidden host"})
        return False

    # -- methods -----------------------------------------------------------
    def do_OPTIONS(self) -> None:  # noqa: N802 - stdlib naming
        if not self._guard():
            return
        self.send_response(204)
        origin = self._origin_allowed()
        self._cors_headers()
        if origin:
            self.send_header("Access-Control-Allow-Methods", "GET, OPTIONS")
            requested = self.headers.get("Access-Control-Request-Headers")
            if requested:
                self.send_header("Access-Control-Allow-Headers", requested)
            if (self.headers.get("Access-Control-Request-Private-Network") or "").lower() == "true":
                self.send_header("Access-Control-Allow-Private-Network", "true")
            self.send_header("Access-Control-Max-Age", "600")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        if not self._guard():
            return
        path = self.path.split("?", 1)[0]
        if path == "/events":
            self._events()
        elif path == "/status":
            self._send_json(200, self.server.hub.status())
        elif path == "/":
            self._send_json(200, {"service": "reader_bridge", "endpoints": ["/events", "/status"]})
        else:
            self._send_json(404, {"error": "not found"})

    def _events(self) -> None:
        self.send_response(200)
        self._cors_headers()
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache, no-store")
        self.send_header("X-Accel-Buffering", "no")
        self.end_headers()
        if self.command == "HEAD":
            return
        hub = self.server.hub
        q = hub.subscribe()
        try:
            self.wfile.write(b"retry: 5000\n\n")
            self.wfile.flush()
            while True:
                try:
                    message = q.get(timeout=self.server.keepalive)
                except queue.Empty:
                    message = b": keepalive\n\n"
                if message is None:
                    break
                self.wfile.write(message)
                self.wfile.flush()
        except OSError:
            pass  # client went away (broken pipe, reset, timeout)
        finally:
            hub.unsubscribe(q)
        self.close_connection = True
