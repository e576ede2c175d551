"""``python -m reader_bridge``: command line entry point."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from . import __version__
from .serial_reader import DEFAULT_SOURCES, parse_sources

log = logging.getLogger("reader_bridge")

DEFAULT_PORT = 8765
DEFAULT_ORIGIN = "http://127.0.0.1:5000"


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise SystemExit(f"{name} must be a number, got {value!r}") from None


def build_parser() -> argparse.ArgumentParser:
    env = os.environ
    p = argparse.ArgumentParser(
        prog="python -m reader_bridge",
        description=(
            "Kortläsarbrygga för Reservkort: läser serienumret från kort i PC/SC-läsare "
            "och skickar det till webbläsaren (Server-Sent Events på 127.0.0.1). "
            "Every option can also be given as an environment variable (shown in brackets)."
        ),
    )
    p.add_argument(
        "--port",
        type=int,
        default=int(env.get("READER_BRIDGE_PORT") or DEFAULT_PORT),
        help=f"TCP port on 127.0.0.1 (READER_BRIDGE_PORT, default {DEFAULT_PORT})",
    )
    p.add_argument(
        "--origin",
        action="append",
        default=None,
        help=(
            "back-office origin allowed by CORS; repeat or comma-separate for several "
            f"(READER_BRIDGE_ORIGIN, default {DEFAULT_ORIGIN})"
        ),
    )
    p.add_argument(
        "--sources",
        default=env.get("READER_BRIDGE_SOURCES") or ",".join(DEFAULT_SOURCES),
        help="where to read the serial from, in order: gdo (EF.GDO ICCID), uid (contactless UID) "
        "(READER_BRIDGE_SOURCES, default gdo,uid)",
    )
    p.add_argument(
        "--poll-timeout",
        type=float,
        default=_env_float("READER_BRIDGE_POLL_TIMEOUT", 1.0),
        help="seconds per SCardGetStatusChange wait (READER_BRIDGE_POLL_TIMEOUT, default 1)",
    )
    p.add_argument(
        "--max-backoff",
        type=float,
        default=_env_float("READER_BRIDGE_MAX_BACKOFF", 5.0),
        help="longest wait between retries while pcscd is unreachable "
        "(READER_BRIDGE_MAX_BACKOFF, default 5 s)",
    )
    p.add_argument(
        "--read-timeout",
        type=float,
        default=_env_float("READER_BRIDGE_READ_TIMEOUT", 5.0),
        help="seconds before a card that does not answer is reported "
        "(READER_BRIDGE_READ_TIMEOUT, default 5)",
    )
    p.add_argument(
        "--log-level",
        default=env.get("READER_BRIDGE_LOG_LEVEL") or "INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        type=str.upper,
        help="log level (READER_BRIDGE_LOG_LEVEL, default INFO)",
    )
    p.add_argument("--version", action="version", version=f"reader_bridge {__version__}")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    raw_origins = args.origin or [os.environ.get("READER_BRIDGE_ORIGIN") or DEFAULT_ORIGIN]
    args.origins = [
        o.strip().rstrip("/") for item in raw_origins for o in item.split(",") if o.strip()
    ]
    try:
        args.sources = parse_sources(args.sources)
    except ValueError as exc:
        parser.error(f"--sources: {exc}")
    if not 0 < args.port < 65536:
        parser.error("--port must be between 1 and 65535")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # imported here so that --help works even without pyscard installed
    from .monitor import ReaderMonitor
    from .server import BridgeHTTPServer, EventHub

    hub = EventHub()
    monitor = ReaderMonitor(
        hub.publish,
        sources=args.sources,
        poll_timeout=args.poll_timeout,
        max_backoff=args.max_backoff,
        read_timeout=args.read_timeout,
    )
    hub.set_status_provider(monitor.status)
    try:
        server = BridgeHTTPServer(args.port, hub, args.origins)
    except OSError as exc:
        log.error("cannot listen on 127.0.0.1:%d: %s", args.port, exc)
        return 2

    stopping = threading.Event()

    def _stop(signum, frame):  # noqa: ARG001
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    monitor.start()
    log.info(
        "reader bridge listening on http://127.0.0.1:%d (origins: %s, sources: %s)",
        server.server_address[1],
        ", ".join(args.origins),
        ",".join(args.sources),
    )
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        hub.close()
        monitor.stop()
        server.server_close()
        log.info("reader bridge stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
