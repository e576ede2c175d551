"""Real PC/SC for the tests: a private ``pcscd`` with the ``vpcd`` virtual reader
driver, virtual cards speaking the vpcd socket protocol, and helpers that run
the reader bridge as a subprocess and read its SSE stream.

Use from a test module or conftest with either::

    pytest_plugins = ["tests.pcsc_support"]
    # or
    from tests.pcsc_support import pcscd, virtual_cards, reader_bridge  # noqa: F401

Needs the Debian packages ``pcscd`` and ``vsmartcard-vpcd`` and pyscard
(``reader_bridge/requirements.txt``). Nothing is skipped when they are
missing: the fixtures fail with a message that says what to install.

pcscd always listens on ``/run/pcscd/pcscd.comm`` (pcsc-lite 1.9 ignores
``PCSCLITE_CSOCK_NAME`` on the daemon side), so no other pcscd may run while
the tests do. The private pcscd reads its own reader.conf.d directory
(``pcscd -c``) with a vpcd reader on free TCP ports, so the system's vpcd
port 35963 is not used.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import queue
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

VPCD_DRIVER_CANDIDATES = (
    "/usr/lib/pcsc/drivers/serial/libifdvpcd.so",
    "/usr/local/lib/pcsc/drivers/serial/libifdvpcd.so",
    "/usr/lib64/pcsc/drivers/serial/libifdvpcd.so",
)
PCSCD_SOCKET = Path("/run/pcscd/pcscd.comm")
PROJECT_ROOT = Path(__file__).resolve().parent.parent
VPCD_SLOTS = 2  # the Debian vpcd driver offers two slots (port, port + 1) per reader.conf entry

# vpcd control bytes
VPCD_CTRL_OFF = 0
VPCD_CTRL_ON = 1
VPCD_CTRL_RESET = 2
VPCD_CTRL_ATR = 4


class PcscSetupError(RuntimeError):
    pass


def wait_until(predicate: Callable[[], object], timeout: float, what: str, step: float = 0.05):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(step)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def free_port_range(count: int) -> int:
    """A base port such that ``base .. base+count-1`` are all free."""
    for _ in range(200):
        base = free_port()
        if base + count < 65536 and all(_port_free(base + i) for i in range(count)):
            return base
    raise PcscSetupError("no free range of TCP ports for vpcd")


def _running_pcscd_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == "pcscd":
                stat = (entry / "stat").read_text()
                if stat.rsplit(")", 1)[1].split()[0] != "Z":
                    pids.append(int(entry.name))
        except OSError:
            continue
    return pids


# --------------------------------------------------------------------------
# pcscd
# --------------------------------------------------------------------------


def vpcd_driver() -> str:
    for path in VPCD_DRIVER_CANDIDATES:
        if os.path.exists(path):
            return path
    raise PcscSetupError(
        "the vpcd PC/SC driver (libifdvpcd.so) is missing: apt-get install -y pcscd vsmartcard-vpcd"
    )


def list_readers() -> list[str] | None:
    """Reader names via pyscard, or ``None`` when pcscd cannot be reached."""
    from smartcard import scard

    hr, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hr != scard.SCARD_S_SUCCESS:
        return None
    try:
        hr, names = scard.SCardListReaders(ctx, [])
        if hr == scard.SCARD_E_NO_READERS_AVAILABLE:
            return []
        if hr != scard.SCARD_S_SUCCESS:
            return None
        return sorted(names)
    finally:
        scard.SCardReleaseContext(ctx)


def reader_card_present(reader: str) -> bool | None:
    from smartcard import scard

    hr, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hr != scard.SCARD_S_SUCCESS:
        return None
    try:
        hr, states = scard.SCardGetStatusChange(ctx, 0, [(reader, scard.SCARD_STATE_UNAWARE)])
        if hr != scard.SCARD_S_SUCCESS:
            return None
        return bool(states[0][1] & scard.SCARD_STATE_PRESENT)
    finally:
        scard.SCardReleaseContext(ctx)


class Pcscd:
    """A private ``pcscd -f`` with a vpcd reader on free ports."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.confdir = self.workdir / "reader.conf.d"
        self.logfile = self.workdir / "pcscd.log"
        self.proc: subprocess.Popen | None = None
        self.base_port = 0
        self.readers: list[str] = []

    @property
    def ports(self) -> list[int]:
        return [self.base_port + i for i in range(VPCD_SLOTS)]

    def port_for(self, reader: str) -> int:
        return self.ports[self.readers.index(reader)]

    def _configure(self) -> None:
        binary = shutil.which("pcscd")
        if binary is None and os.path.exists("/usr/sbin/pcscd"):
            binary = "/usr/sbin/pcscd"
        if binary is None:
            raise PcscSetupError("pcscd is not installed: apt-get install -y pcscd vsmartcard-vpcd")
        self.binary = binary
        driver = vpcd_driver()
        if not self.base_port:
            self.base_port = free_port_range(VPCD_SLOTS)
        self.confdir.mkdir(parents=True, exist_ok=True)
        (self.confdir / "vpcd").write_text(
            'FRIENDLYNAME "Virtual PCD"\n'
            f"DEVICENAME   /dev/null:{self.base_port}\n"
            f"LIBPATH      {driver}\n"
            f"CHANNELID    {self.base_port}\n"
        )

    def start(self, timeout: float = 15.0) -> None:
        if self.running:
            return
        self._configure()
        others = _running_pcscd_pids()
        if others:
            raise PcscSetupError(
                f"another pcscd is running (pid {', '.join(map(str, others))}); the tests need "
                "their own. Stop it first (e.g. systemctl stop pcscd.socket pcscd.service)."
            )
        if PCSCD_SOCKET.exists():
            PCSCD_SOCKET.unlink()  # stale socket of a dead pcscd
        self._log = open(self.logfile, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [self.binary, "--foreground", "--config", str(self.confdir), "--info"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

        def ready():
            if self.proc.poll() is not None:
                raise PcscSetupError(
                    f"pcscd exited with {self.proc.returncode}; log:\n{self.log_text()}"
                )
            names = list_readers()
            return names if names and len(names) >= VPCD_SLOTS else None

        self.readers = wait_until(ready, timeout, "pcscd to offer the vpcd readers")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        self._log.close()
        with contextlib.suppress(AssertionError):
            wait_until(lambda: not PCSCD_SOCKET.exists(), 3, "pcscd socket removal")

    def log_text(self) -> str:
        return self.logfile.read_text(errors="replace") if self.logfile.exists() else ""


# --------------------------------------------------------------------------
# virtual cards (vpcd protocol: 2-byte big-endian length + payload)
# --------------------------------------------------------------------------


def make_atr(historical: bytes = b"") -> bytes:
    """A T=1 ATR: 3B 8K 80 01 <historical> TCK."""
    body = bytes([0x80 | len(historical), 0x80, 0x01]) + historical
    tck = 0
    for b in body:
        tck ^= b
    return b"\x3b" + body + bytes([tck])


def encode_bcd(digits: str) -> bytes:
    if len(digits) % 2:
        digits += "F"
    return bytes.fromhex(digits)


def gdo_content(iccid: str) -> bytes:
    value = encode_bcd(iccid)
    return bytes([0x5A, len(value)]) + value


class VirtualCard:
    """A virtual ICC: connects to a vpcd slot port, answers in a thread.

    ``insert(port)`` connects (the reader sees the card), ``remove()`` closes
    the socket (the reader sees it removed). Subclasses implement ``apdu``.
    """

    atr = make_atr(b"VirtCard")

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.thread: threading.Thread | None = None
        self.port: int | None = None
        self.apdus: list[bytes] = []
        self.powered = False
        self.reader: str | None = None
        self._stop = threading.Event()

    def apdu(self, command: bytes) -> bytes:  # pragma: no cover - overridden
        return b"\x6d\x00"

    def on_power(self) -> None:
        """Reset of the card's state (selected file)."""

    def insert(self, port: int, timeout: float = 10.0) -> VirtualCard:
        self.port = port
        self._stop.clear()

        def connect():
            try:
                return socket.create_connection(("127.0.0.1", port), timeout=1)
            except OSError:
                return None

        self.sock = wait_until(connect, timeout, f"vpcd to accept a card on port {port}", step=0.1)
        self.sock.settimeout(0.2)
        self.thread = threading.Thread(target=self._serve, name=f"vicc-{port}", daemon=True)
        self.thread.start()
        return self

    def remove(self) -> None:
        self._stop.set()
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()
        if self.thread is not None:
            self.thread.join(5)
        self.sock = None
        self.thread = None

    def _recv_exact(self, n: int) -> bytes | None:
        buf = b""
        while len(buf) < n:
            if self._stop.is_set():
                return None
            try:
                chunk = self.sock.recv(n - len(buf))
            except TimeoutError:
                continue
            except OSError:
                return None
            if not chunk:
                return None
            buf += chunk
        return buf

    def _send(self, payload: bytes) -> None:
        self.sock.sendall(struct.pack(">H", len(payload)) + payload)

    def _serve(self) -> None:
        try:
            while not self._stop.is_set():
                header = self._recv_exact(2)
                if header is None:
                    return
                (length,) = struct.unpack(">H", header)
                payload = self._recv_exact(length) if length else b""
                if payload is None:
                    return
                if length == 1:
                    self._control(payload[0])
                elif length > 1:
                    self.apdus.append(payload)
                    response = self.apdu(payload)
                    if response is not None:
                        self._send(response)
        except OSError:
            return

    def _control(self, code: int) -> None:
        if code == VPCD_CTRL_ATR:
            self._send(self.atr)
        elif code in (VPCD_CTRL_ON, VPCD_CTRL_RESET):
            self.powered = True
            self.on_power()
        elif code == VPCD_CTRL_OFF:
            self.powered = False


class GdoCard(VirtualCard):
    """A contact card with MF 3F00 / EF.GDO 2F02 holding an ICCID (tag 5A)."""

    atr = make_atr(b"SITHSgdo")

    def __init__(self, iccid: str = "8946000000012345678", content: bytes | None = None) -> None:
        super().__init__()
        self.iccid = iccid
        self.content = content if content is not None else gdo_content(iccid)
        self.selected: str | None = None

    def on_power(self) -> None:
        self.selected = None

    def apdu(self, c: bytes) -> bytes:
        cla, ins, p1, p2 = c[0], c[1], c[2], c[3]
        if cla & 0xF0 == 0xF0:  # reader pseudo-APDUs (FF CA): a contact card has no UID
            return b"\x6a\x81"
        if ins == 0xA4:
            lc = c[4] if len(c) > 4 else 0
            fid = c[5 : 5 + lc].hex().upper()
            if p1 == 0x00 and fid == "3F00":
                self.selected = "3F00"
                return b"\x90\x00"
            if fid == "2F02" and p1 in (0x00, 0x02):
                self.selected = "2F02"
                return b"\x90\x00"
            return b"\x6a\x82"
        if ins == 0xB0:
            if self.selected != "2F02":
                return b"\x69\x86"
            offset = ((p1 & 0x7F) << 8) | p2
            le = c[4] if len(c) == 5 else 0
            le = le or 256
            if offset > len(self.content):
                return b"\x6b\x00"
            chunk = self.content[offset : offset + le]
            if len(chunk) < le:
                return chunk + b"\x62\x82"
            return chunk + b"\x90\x00"
        return b"\x6d\x00"


class UidCard(VirtualCard):
    """A contactless card seen through a PC/SC reader: only ``FF CA`` works."""

    atr = bytes.fromhex("3B8F8001804F0CA000000306030001000000006A")

    def __init__(self, uid: str = "04A1B2C3D4E5F6") -> None:
        super().__init__()
        self.uid = bytes.fromhex(uid)

    def apdu(self, c: bytes) -> bytes:
        if c[:4] == b"\xff\xca\x00\x00":
            return self.uid + b"\x90\x00"
        if c[1] == 0xA4:
            return b"\x6a\x82"
        return b"\x6d\x00"


class GarbageCard(VirtualCard):
    """Claims every file exists, then answers nonsense."""

    atr = make_atr(b"garbage!")

    def apdu(self, c: bytes) -> bytes:
        if c[1] == 0xA4:
            return b"\x90\x00"
        if c[1] == 0xB0:
            return b"\x5a\x40\x89\x46\x00" + b"\x90\x00"  # TLV length runs past the data
        return b"\x13"  # not even a status word


class SilentCard(VirtualCard):
    """Has an ATR but never answers a command (until removed)."""

    atr = make_atr(b"silent..")

    def apdu(self, c: bytes) -> bytes | None:
        return None


# --------------------------------------------------------------------------
# the bridge as a subprocess + an SSE reader
# --------------------------------------------------------------------------


class SSEStream:
    """Reads ``text/event-stream`` in a background thread into a queue."""

    def __init__(self, url: str, headers: dict | None = None, timeout: float = 10.0) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        headers = {"Accept": "text/event-stream", **(headers or {})}
        self.conn.request("GET", parts.path or "/", headers=headers)
        self.response = self.conn.getresponse()
        self.events: queue.Queue = queue.Queue()
        self.seen: list[tuple[str, object]] = []
        self.latest: dict[str, object] = {}  # last data consumed per event name
        self.closed = threading.Event()
        if self.response.status == 200:
            self.response.fp.raw._sock.settimeout(None)  # noqa: SLF001 - long-lived stream
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        event, data = "message", []
        try:
            while True:
                raw = self.response.fp.readline()
                if not raw:
                    break
                line = raw.decode("utf-8").rstrip("\r\n")
                if line == "":
                    if data:
                        text = "\n".join(data)
                        try:
                            payload = json.loads(text)
                        except ValueError:
                            payload = text
                        self.events.put((event, payload))
                    event, data = "message", []
                elif line.startswith(":"):
                    continue
                else:
                    name, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if name == "event":
                        event = value
                    elif name == "data":
                        data.append(value)
        except (OSError, ValueError, AttributeError):
            pass
        finally:
            self.closed.set()

    def next(self, timeout: float = 10.0) -> tuple[str, object]:
        try:
            item = self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"no SSE event within {timeout:.1f}s; seen so far: {self.seen}"
            ) from None
        self.seen.append(item)
        self.latest[item[0]] = item[1]
        return item

    def wait_for(
        self,
        event: str,
        predicate: Callable[[object], bool] | None = None,
        timeout: float = 15.0,
        current: bool = False,
    ) -> object:
        """Skip events until ``event`` (matching ``predicate``) arrives; return its data.

        With ``current=True`` the last ``event`` already consumed counts too
        (for states such as ``status``, not for one-off events).
        """
        if current and event in self.latest:
            data = self.latest[event]
            if predicate is None or predicate(data):
                return data
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {event!r} event within {timeout}s; seen: {self.seen}")
            name, data = self.next(left)
            if name == event and (predicate is None or predicate(data)):
                return data

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.response.fp.raw._sock.shutdown(socket.SHUT_RDWR)  # noqa: SLF001
        with contextlib.suppress(Exception):
            self.conn.close()
        self.thread.join(3)


class BridgeProcess:
    """``python -m reader_bridge`` on a free loopback port."""

    def __init__(self, workdir: Path, *args: str, env: dict | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.logfile = Path(workdir) / f"bridge-{self.port}.log"
        self._log = open(self.logfile, "wb")  # noqa: SIM115 - closed in stop()
        full_env = {**os.environ, "READER_BRIDGE_MAX_BACKOFF": "0.5", **(env or {})}
        full_env["PYTHONPATH"] = str(PROJECT_ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reader_bridge",
                "--port",
                str(self.port),
                "--log-level",
                "DEBUG",
                *args,
            ],
            cwd=PROJECT_ROOT,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.streams: list[SSEStream] = []
        wait_until(self._listening, 15, f"the reader bridge to listen on port {self.port}")

    def _listening(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(
                f"reader bridge exited with {self.proc.returncode}:\n{self.log_text()}"
            )
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def request(
        self, method: str, path: str, headers: dict | None = None
    ) -> http.client.HTTPResponse:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        response.body = response.read()
        conn.close()
        return response

    def status(self) -> dict:
        return json.loads(self.request("GET", "/status").body)

    def events(self, headers: dict | None = None) -> SSEStream:
        stream = SSEStream(self.url + "/events", headers=headers)
        self.streams.append(stream)
        return stream

    def log_text(self) -> str:
        self._log.flush()
        return self.logfile.read_text(errors="replace")

    def stop(self) -> None:
        for stream in self.streams:
            stream.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


# --------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pcscd(tmp_path_factory) -> Iterator[Pcscd]:
    """A running private pcscd with two vpcd readers (``pcscd.readers``)."""
    try:
        import smartcard  # noqa: F401
    except ImportError:
        pytest.fail(
            "pyscard is not installed: pip install -r reader_bridge/requirements.txt",
            pytrace=False,
        )
    daemon = Pcscd(tmp_path_factory.mktemp("pcscd"))
    try:
        daemon.start()
    except PcscSetupError as exc:
        daemon.stop()
        pytest.fail(f"cannot start pcscd for the tests: {exc}", pytrace=False)
    yield daemon
    daemon.stop()


@pytest.fixture
def virtual_cards(pcscd) -> Iterator[Callable[..., VirtualCard]]:
    """``insert(card, reader_index=0)`` puts a VirtualCard into a vpcd reader;
    every card still inserted is removed (and seen removed) at the end."""
    inserted: list[tuple[VirtualCard, str]] = []

    def insert(card: VirtualCard, reader_index: int = 0) -> VirtualCard:
        reader = pcscd.readers[reader_index]
        card.insert(pcscd.port_for(reader))
        card.reader = reader
        inserted.append((card, reader))
        return card

    yield insert
    for card, _reader in inserted:
        if card.sock is not None:
            card.remove()
    if pcscd.running:
        for _, reader in inserted:
            wait_until(
                lambda r=reader: reader_card_present(r) is False, 10, f"{reader} to be empty"
            )


@pytest.fixture
def reader_bridge(tmp_path) -> Iterator[Callable[..., BridgeProcess]]:
    """Factory: ``reader_bridge("--sources", "uid")`` starts the bridge subprocess."""
    started: list[BridgeProcess] = []

    def start(*args: str, env: dict | None = None) -> BridgeProcess:
        bridge = BridgeProcess(tmp_path, *args, env=env)
        started.append(bridge)
        return bridge

    yield start
    for bridge in started:
        bridge.stop()
