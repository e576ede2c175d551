"""Watches every PC/SC reader and reads the serial of each inserted card.

One thread polls ``SCardGetStatusChange`` on all readers plus the
``\\\\?PnP?\\Notification`` pseudo reader (reader plugged in or out). Any
sign that pcscd went away (no service, invalid context, comm error) drops the
context; the loop then re-establishes it with backoff, so the bridge starts
before pcscd and survives pcscd restarts. Each inserted card is read in a
short-lived thread of its own, so a slow or mute card never blocks the other
readers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from smartcard import scard

from .serial_reader import DEFAULT_SOURCES, CardReadError, read_serial

log = logging.getLogger(__name__)

PNP_READER = "\\\\?PnP?\\Notification"

# hresults that mean "the context is gone, make a new one"
_CONTEXT_LOST = {
    scard.SCARD_E_NO_SERVICE,
    scard.SCARD_E_SERVICE_STOPPED,
    scard.SCARD_E_INVALID_HANDLE,
    scard.SCARD_F_COMM_ERROR,
    scard.SCARD_F_INTERNAL_ERROR,
    scard.SCARD_E_NO_MEMORY,
}
_CARD_GONE = {
    scard.SCARD_W_REMOVED_CARD,
    scard.SCARD_E_NO_SMARTCARD,
    scard.SCARD_E_UNKNOWN_READER,
    scard.SCARD_E_READER_UNAVAILABLE,
    scard.SCARD_E_NO_READERS_AVAILABLE,
}

Emit = Callable[[str, dict], None]


class PcscError(Exception):
    def __init__(self, hresult: int, what: str) -> None:
        self.hresult = hresult & 0xFFFFFFFF
        super().__init__(f"{what}: {scard.SCardGetErrorMessage(hresult)} (0x{self.hresult:08X})")


def _explain(hresult: int) -> tuple[str, str]:
    """A readable (Swedish, English) message for a failing PC/SC call."""
    hresult &= 0xFFFFFFFF
    if hresult in (scard.SCARD_W_UNRESPONSIVE_CARD & 0xFFFFFFFF,):
        return "Kortet svarar inte.", "The card does not respond."
    if hresult == scard.SCARD_E_SHARING_VIOLATION & 0xFFFFFFFF:
        return (
            "Kortet används av ett annat program.",
            "The card is in use by another program.",
        )
    if hresult in {h & 0xFFFFFFFF for h in _CARD_GONE}:
        return "Kortet togs bort under läsningen.", "The card was removed while being read."
    unsupported = (scard.SCARD_W_UNSUPPORTED_CARD, scard.SCARD_E_PROTO_MISMATCH)
    if hresult in {h & 0xFFFFFFFF for h in unsupported}:
        return "Kortet stöds inte av läsaren.", "The card is not supported by the reader."
    if hresult == scard.SCARD_E_NOT_TRANSACTED & 0xFFFFFFFF:
        return (
            "Kortet svarade inte på kommandot.",
            "The card did not answer the command.",
        )
    msg = scard.SCardGetErrorMessage(hresult)
    return f"Kortläsarfel: {msg} (0x{hresult:08X})", f"Reader error: {msg} (0x{hresult:08X})"


class CardConnection:
    """A shared connection to the card in ``reader``, on its own context."""

    def __init__(self, reader: str) -> None:
        self.reader = reader
        self.context = None
        self.card = None
        hr, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if hr != scard.SCARD_S_SUCCESS:
            raise PcscError(hr, "SCardEstablishContext")
        self.context = ctx
        hr, card, protocol = scard.SCardConnect(
            ctx, reader, scard.SCARD_SHARE_SHARED, scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
        )
        if hr != scard.SCARD_S_SUCCESS:
            self.close()
            raise PcscError(hr, "SCardConnect")
        self.card = card
        self.pci = scard.SCARD_PCI_T0 if protocol == scard.SCARD_PROTOCOL_T0 else scard.SCARD_PCI_T1

    def transmit(self, apdu: bytes) -> bytes:
        hr, response = scard.SCardTransmit(self.card, self.pci, list(apdu))
        if hr != scard.SCARD_S_SUCCESS:
            raise PcscError(hr, "SCardTransmit")
        return bytes(response)

    def close(self) -> None:
        if self.card is not None:
            scard.SCardDisconnect(self.card, scard.SCARD_LEAVE_CARD)
            self.card = None
        if self.context is not None:
            scard.SCardReleaseContext(self.context)
            self.context = None


@dataclass
class ReaderState:
    name: str
    current: int = scard.SCARD_STATE_UNAWARE
    present: bool = False
    mute: bool = False
    counter: int = -1
    generation: int = 0  # bumped on every insertion and removal
    serial: str | None = None
    source: str | None = None
    error: str | None = None
    atr: str | None = None
    reading: bool = False

    def public(self) -> dict:
        return {
            "name": self.name,
            "card_present": self.present,
            "serial": self.serial,
            "source": self.source,
            "error": self.error,
        }


class ReaderMonitor:
    """Polls PC/SC and calls ``emit(event, data)`` for every change."""

    def __init__(
        self,
        emit: Emit,
        sources: Sequence[str] = DEFAULT_SOURCES,
        poll_timeout: float = 1.0,
        min_backoff: float = 0.5,
        max_backoff: float = 5.0,
        read_timeout: float = 5.0,
    ) -> None:
        self.emit = emit
        self.sources = tuple(sources)
        self.poll_timeout_ms = max(50, int(poll_timeout * 1000))
        self.min_backoff = min_backoff
        self.max_backoff = max(max_backoff, min_backoff)
        self.read_timeout = read_timeout
        self._lock = threading.RLock()
        self._readers: dict[str, ReaderState] = {}
        self._pcsc_ok = False
        self._pcsc_message: str | None = "Väntar på PC/SC-tjänsten (pcscd)…"
        self._context = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- public ------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="reader-monitor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        ctx = self._context
        if ctx is not None:
            try:
                scard.SCardCancel(ctx)
            except Exception:  # pragma: no cover - best effort
                pass
        if self._thread is not None:
            self._thread.join(timeout)

    def status(self) -> dict:
        with self._lock:
            return {
                "pcsc": self._pcsc_ok,
                "message": self._pcsc_message,
                "readers": [r.public() for _, r in sorted(self._readers.items())],
                "sources": list(self.sources),
            }

    # -- loop --------------------------------------------------------------
    def _run(self) -> None:
        backoff = self.min_backoff
        while not self._stop.is_set():
            try:
                self._establish()
            except PcscError as exc:
                self._set_unavailable(f"PC/SC-tjänsten (pcscd) nås inte: {exc}")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            backoff = self.min_backoff
            try:
                self._watch()
            except PcscError as exc:
                self._set_unavailable(f"Kontakten med PC/SC-tjänsten bröts: {exc}")
            except Exception:  # never let the monitor die
                log.exception("unexpected error in reader monitor")
                self._set_unavailable("Oväntat fel i kortläsarbevakningen, försöker igen.")
            finally:
                self._release()
            self._stop.wait(self.min_backoff)

    def _establish(self) -> None:
        hr, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if hr != scard.SCARD_S_SUCCESS:
            raise PcscError(hr, "SCardEstablishContext")
        self._context = ctx
        with self._lock:
            changed = not self._pcsc_ok
            self._pcsc_ok = True
            self._pcsc_message = None
        if changed:
            log.info("connected to PC/SC")
            self._emit_status()

    def _release(self) -> None:
        ctx, self._context = self._context, None
        if ctx is not None:
            try:
                scard.SCardReleaseContext(ctx)
            except Exception:  # pragma: no cover
                pass

    def _set_unavailable(self, message: str) -> None:
        with self._lock:
            was_ok = self._pcsc_ok
            previous = self._pcsc_message
            self._pcsc_ok = False
            self._pcsc_message = message
            gone = list(self._readers.values())
            self._readers.clear()
        for state in gone:
            if state.present:
                self.emit("card-removed", {"reader": state.name})
        if was_ok or gone or previous != message:
            if was_ok:
                log.warning("%s", message)
            self._emit_status()

    def _list_readers(self) -> list[str]:
        hr, names = scard.SCardListReaders(self._context, [])
        if hr == scard.SCARD_S_SUCCESS:
            return list(names)
        if hr == scard.SCARD_E_NO_READERS_AVAILABLE:
            return []
        raise PcscError(hr, "SCardListReaders")

    def _watch(self) -> None:
        pnp_state = scard.SCARD_STATE_UNAWARE
        pnp_supported = True
        while not self._stop.is_set():
            names = self._list_readers()
            self._sync_readers(names)
            with self._lock:
                query = [(s.name, s.current) for s in self._readers.values()]
            if pnp_supported:
                query.append((PNP_READER, pnp_state))
            if not query:
                # no reader and no PnP notifications: poll slowly
                self._stop.wait(self.poll_timeout_ms / 1000)
                continue
            hr, result = scard.SCardGetStatusChange(self._context, self.poll_timeout_ms, query)
            if hr in (scard.SCARD_E_TIMEOUT, scard.SCARD_E_CANCELLED):
                continue
            if hr in (scard.SCARD_E_UNKNOWN_READER, scard.SCARD_E_READER_UNAVAILABLE):
                continue  # a reader vanished between list and wait: list again
            if hr != scard.SCARD_S_SUCCESS:
                if hr in _CONTEXT_LOST:
                    raise PcscError(hr, "SCardGetStatusChange")
                if pnp_supported and hr == scard.SCARD_E_INVALID_VALUE:
                    pnp_supported = False
                    continue
                raise PcscError(hr, "SCardGetStatusChange")
            for name, event_state, atr in result:
                if name == PNP_READER:
                    if event_state & scard.SCARD_STATE_UNKNOWN:
                        pnp_supported = False
                    pnp_state = event_state & ~scard.SCARD_STATE_CHANGED
                    continue
                self._reader_event(name, event_state, atr)

    # -- state changes -----------------------------------------------------
    def _sync_readers(self, names: list[str]) -> None:
        added: list[str] = []
        removed: list[ReaderState] = []
        with self._lock:
            for name in names:
                if name not in self._readers:
                    self._readers[name] = ReaderState(name)
                    added.append(name)
            for name in list(self._readers):
                if name not in names:
                    removed.append(self._readers.pop(name))
        for state in removed:
            log.info("reader removed: %s", state.name)
            if state.present:
                self.emit("card-removed", {"reader": state.name})
        for name in added:
            log.info("reader added: %s", name)
        if added or removed:
            self._emit_status()

    def _reader_event(self, name: str, event_state: int, atr) -> None:
        start_read = None
        events: list[tuple[str, dict]] = []
        with self._lock:
            state = self._readers.get(name)
            if state is None:
                return
            state.current = event_state & ~scard.SCARD_STATE_CHANGED
            if event_state & (scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_IGNORE):
                return  # reader gone; the next listing drops it
            present = bool(event_state & scard.SCARD_STATE_PRESENT)
            mute = bool(event_state & scard.SCARD_STATE_MUTE)
            counter = (event_state >> 16) & 0xFFFF
            reinserted = (
                present and state.present and state.counter >= 0 and counter != state.counter
            )
            if state.present and (not present or reinserted):
                state.present = False
                state.generation += 1
                state.serial = state.source = state.error = state.atr = None
                events.append(("card-removed", {"reader": name}))
            if present and not state.present:
                state.present = True
                state.mute = mute
                state.generation += 1
                state.atr = bytes(atr or b"").hex().upper() or None
                if mute:
                    msg = "Kortet svarar inte (inget ATR). Vänd kortet eller prova ett annat."
                    msg_en = "The card does not answer (no ATR)."
                    state.error = msg
                    events.append(("error", {"reader": name, "message": msg, "message_en": msg_en}))
                else:
                    start_read = state.generation
            elif present and state.mute and not mute:
                # pcscd managed to power the card after all
                state.mute = False
                state.error = None
                start_read = state.generation
            state.counter = counter
        for event, data in events:
            self.emit(event, data)
        if events or start_read is not None:
            self._emit_status()
        if start_read is not None:
            threading.Thread(
                target=self._read_card, args=(name, start_read), name=f"read-{name}", daemon=True
            ).start()

    def _current(self, name: str, generation: int) -> ReaderState | None:
        state = self._readers.get(name)
        if state is None or state.generation != generation or not state.present:
            return None
        return state

    def _read_card(self, name: str, generation: int) -> None:
        with self._lock:
            state = self._current(name, generation)
            if state is None:
                return
            state.reading = True
        # a card that never answers blocks SCardTransmit until it is removed:
        # tell the user after read_timeout seconds and drop the late result
        watchdog = threading.Timer(self.read_timeout, self._read_timed_out, args=(name, generation))
        watchdog.daemon = True
        watchdog.start()
        serial = source = None
        error: tuple[str, str] | None = None
        conn = None
        try:
            conn = CardConnection(name)
            serial, source = read_serial(conn.transmit, self.sources)
        except CardReadError as exc:
            error = (exc.message, exc.message_en)
        except PcscError as exc:
            error = _explain(exc.hresult)
        except Exception as exc:  # garbage that broke our parsing, a dead driver ...
            log.exception("reading the card in %s failed", name)
            error = ("Kortet kunde inte läsas.", f"The card could not be read: {exc}")
        finally:
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # pragma: no cover
                    pass
            watchdog.cancel()
        with self._lock:
            state = self._current(name, generation)
            if state is None or not state.reading:  # removed meanwhile, or timed out
                return
            state.reading = False
            if error is None:
                state.serial, state.source, state.error = serial, source, None
            else:
                state.error = error[0]
        if error is None:
            log.info("card in %s: %s (%s)", name, serial, source)
            self.emit("card-inserted", {"reader": name, "serial": serial, "source": source})
        else:
            log.warning("card in %s unreadable: %s", name, error[1])
            self.emit("error", {"reader": name, "message": error[0], "message_en": error[1]})
        self._emit_status()

    def _read_timed_out(self, name: str, generation: int) -> None:
        with self._lock:
            state = self._current(name, generation)
            if state is None or not state.reading:
                return
            state.reading = False
            msg = "Kortet svarar inte. Ta ut det och sätt i det igen, eller prova ett annat kort."
            state.error = msg
        msg_en = f"The card did not answer within {self.read_timeout:g} s."
        log.warning("card in %s: %s", name, msg_en)
        self.emit("error", {"reader": name, "message": msg, "message_en": msg_en})
        self._emit_status()

    def _emit_status(self) -> None:
        self.emit("status", self.status())
