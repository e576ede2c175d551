"""APDU logic: how a card's serial number is read.

Everything here works on a ``transmit`` callable (``bytes -> bytes``, the
response APDU including its two status bytes), so the parsing and the APDU
sequences can be tested without a reader. The pyscard connection lives in
:mod:`reader_bridge.monitor`.

Sources:

* ``gdo`` – the ICCID in the card's EF.GDO (ISO/IEC 7816-6 "global data
  objects"): SELECT MF 3F00, SELECT EF 2F02, READ BINARY, then the BER-TLV
  data object with tag ``5A``, BCD digits padded with ``F`` nibbles.
* ``uid`` – the contactless UID through the PC/SC pseudo-APDU
  ``FF CA 00 00 00`` (GET DATA), as upper-case hex.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

Transmit = Callable[[bytes], bytes]

SOURCES = ("gdo", "uid")
DEFAULT_SOURCES = ("gdo", "uid")

SELECT_MF = bytes.fromhex("00A4000C023F00")
SELECT_GDO = bytes.fromhex("00A4020C022F02")
SELECT_GDO_BY_ID = bytes.fromhex("00A4000C022F02")
READ_BINARY = bytes.fromhex("00B0000000")
GET_UID = bytes.fromhex("FFCA000000")

SW_OK = 0x9000
ICCID_TAG = 0x5A
MAX_READ = 4096


class CardReadError(Exception):
    """A card could not be read; ``message`` is Swedish, ``message_en`` English."""

    def __init__(self, message: str, message_en: str) -> None:
        super().__init__(message_en)
        self.message = message
        self.message_en = message_en


class NotSupported(CardReadError):
    """The card does not offer this source (file missing, command refused)."""


# --------------------------------------------------------------------------
# pure parsing
# --------------------------------------------------------------------------


def split_response(response: bytes) -> tuple[bytes, int]:
    """Split a response APDU into data and status word; raise on garbage."""
    if len(response) < 2:
        raise CardReadError(
            "Kortet gav ett ogiltigt svar (för kort svar).",
            "The card sent an invalid response (too short).",
        )
    return bytes(response[:-2]), (response[-2] << 8) | response[-1]


def parse_ber_tlv(data: bytes) -> list[tuple[int, bytes]]:
    """Parse a BER-TLV byte string into ``(tag, value)`` pairs (top level).

    Tags are returned as integers including all tag bytes (``0x5A``,
    ``0x5F20`` ...). ``00`` and ``FF`` bytes between objects are padding
    (ISO/IEC 7816-4) and skipped. Raises ``ValueError`` on malformed input.
    """
    out: list[tuple[int, bytes]] = []
    i = 0
    n = len(data)
    while i < n:
        if data[i] in (0x00, 0xFF):
            i += 1
            continue
        tag = data[i]
        i += 1
        if tag & 0x1F == 0x1F:  # multi-byte tag
            while True:
                if i >= n:
                    raise ValueError("truncated tag")
                b = data[i]
                tag = (tag << 8) | b
                i += 1
                if not b & 0x80:
                    break
                if tag > 0xFFFFFFFF:
                    raise ValueError("tag too long")
        if i >= n:
            raise ValueError("missing length")
        length = data[i]
        i += 1
        if length == 0x80:
            raise ValueError("indefinite length not allowed")
        if length > 0x80:
            count = length & 0x7F
            if count > 3 or i + count > n:
                raise ValueError("bad length field")
            length = int.from_bytes(data[i : i + count], "big")
            i += count
        if i + length > n:
            raise ValueError("value runs past the end of the data")
        out.append((tag, bytes(data[i : i + length])))
        i += length
    return out


def _is_constructed(tag: int) -> bool:
    first = tag
    while first > 0xFF:
        first >>= 8
    return bool(first & 0x20)


def find_tlv(data: bytes, wanted: int) -> bytes | None:
    """Find the first data object ``wanted`` (depth first, into constructed tags)."""
    for tag, value in parse_ber_tlv(data):
        if tag == wanted:
            return value
        if _is_constructed(tag):
            found = find_tlv(value, wanted)
            if found is not None:
                return found
    return None


def decode_bcd(value: bytes) -> str:
    """Decode packed BCD (high nibble first), stripping trailing ``F`` padding.

    ``89 46 00 .. 67 8F`` -> ``"89460...678"``. A non-digit nibble that is not
    trailing ``F`` padding raises ``ValueError``.
    """
    nibbles = []
    for b in value:
        nibbles.append(b >> 4)
        nibbles.append(b & 0x0F)
    while nibbles and nibbles[-1] == 0x0F:
        nibbles.pop()
    if not nibbles:
        raise ValueError("no digits")
    if any(x > 9 for x in nibbles):
        raise ValueError("not BCD")
    return "".join(str(x) for x in nibbles)


def parse_gdo(content: bytes) -> str:
    """Return the ICCID digits found in the contents of EF.GDO."""
    try:
        value = find_tlv(content, ICCID_TAG)
    except ValueError as exc:
        raise CardReadError(
            "Kortets EF.GDO har ett ogiltigt format.",
            f"The card's EF.GDO is malformed ({exc}).",
        ) from exc
    if value is None:
        raise NotSupported(
            "Kortets EF.GDO saknar kortnummer (ICCID).",
            "The card's EF.GDO holds no ICCID (tag 5A).",
        )
    try:
        return decode_bcd(value)
    except ValueError as exc:
        raise CardReadError(
            "Kortnumret i EF.GDO är inte giltiga siffror.",
            f"The ICCID in EF.GDO is not valid BCD ({exc}).",
        ) from exc


def format_uid(data: bytes) -> str:
    if not 4 <= len(data) <= 10:
        raise CardReadError(
            f"Kortets UID har en ogiltig längd ({len(data)} byte).",
            f"The card's UID has an invalid length ({len(data)} bytes).",
        )
    return data.hex().upper()


def parse_sources(text: str | Iterable[str]) -> tuple[str, ...]:
    """``"gdo,uid"`` -> ``("gdo", "uid")``; raises ``ValueError`` on unknown names."""
    items = text.split(",") if isinstance(text, str) else list(text)
    result: list[str] = []
    for item in items:
        name = item.strip().lower()
        if not name:
            continue
        if name not in SOURCES:
            raise ValueError(f"unknown source {name!r} (known: {', '.join(SOURCES)})")
        if name not in result:
            result.append(name)
    if not result:
        raise ValueError("no source given")
    return tuple(result)


# --------------------------------------------------------------------------
# APDU sequences
# --------------------------------------------------------------------------


def exchange(transmit: Transmit, apdu: bytes) -> tuple[bytes, int]:
    """Send ``apdu``; follow ``61xx`` (GET RESPONSE) and ``6Cxx`` (wrong Le)."""
    data, sw = split_response(transmit(apdu))
    if sw >> 8 == 0x6C and len(apdu) >= 5:
        data, sw = split_response(transmit(apdu[:-1] + bytes([sw & 0xFF])))
    collected = data
    rounds = 0
    while sw >> 8 == 0x61 and rounds < 32:
        rounds += 1
        data, sw = split_response(transmit(bytes([apdu[0] & 0x03, 0xC0, 0, 0, sw & 0xFF])))
        collected += data
    return collected, sw


def _select(transmit: Transmit, apdu: bytes) -> int:
    _, sw = exchange(transmit, apdu)
    if sw == 0x6A86 or sw == 0x6B00:  # P2 "no response data" not accepted: ask for FCI
        _, sw = exchange(transmit, apdu[:3] + b"\x00" + apdu[4:] + b"\x00")
    return sw


def read_binary(transmit: Transmit) -> bytes:
    content = b""
    while len(content) < MAX_READ:
        offset = len(content)
        apdu = bytes([0x00, 0xB0, (offset >> 8) & 0x7F, offset & 0xFF, 0x00])
        data, sw = exchange(transmit, apdu)
        if sw in (0x6B00, 0x6282) and content:
            break  # offset beyond end / end of file reached
        if sw not in (SW_OK, 0x6282):
            if content:
                break
            raise NotSupported(
                f"Kortet vägrade läsa EF.GDO (SW {sw:04X}).",
                f"The card refused to read EF.GDO (SW {sw:04X}).",
            )
        content += data
        if sw == 0x6282 or len(data) < 256 or not data:
            break
        try:  # stop as soon as the TLV data is complete
            parse_ber_tlv(content)
            break
        except ValueError:
            continue
    return content


def read_gdo_serial(transmit: Transmit) -> str:
    sw = _select(transmit, SELECT_MF)
    if sw != SW_OK:
        raise NotSupported(
            f"Kortet saknar huvudkatalogen 3F00 (SW {sw:04X}).",
            f"The card has no master file 3F00 (SW {sw:04X}).",
        )
    sw = _select(transmit, SELECT_GDO)
    if sw != SW_OK:
        sw = _select(transmit, SELECT_GDO_BY_ID)
    if sw != SW_OK:
        raise NotSupported(
            f"Kortet saknar EF.GDO 2F02 (SW {sw:04X}).",
            f"The card has no EF.GDO 2F02 (SW {sw:04X}).",
        )
    return parse_gdo(read_binary(transmit))


def read_uid_serial(transmit: Transmit) -> str:
    data, sw = exchange(transmit, GET_UID)
    if sw != SW_OK:
        raise NotSupported(
            f"Läsaren/kortet gav inget UID (SW {sw:04X}).",
            f"The reader/card returned no UID (SW {sw:04X}).",
        )
    return format_uid(data)


READERS: dict[str, Callable[[Transmit], str]] = {
    "gdo": read_gdo_serial,
    "uid": read_uid_serial,
}


def read_serial(transmit: Transmit, sources: Sequence[str] = DEFAULT_SOURCES) -> tuple[str, str]:
    """Try each source in order; return ``(serial, source)``.

    Raises :class:`CardReadError` with the most telling failure when none
    works (a malformed answer beats a plain "not supported").
    """
    failures: list[CardReadError] = []
    for source in sources:
        try:
            return READERS[source](transmit), source
        except CardReadError as exc:
            failures.append(exc)
    garbage = [f for f in failures if not isinstance(f, NotSupported)]
    if garbage:
        first = garbage[0]
        raise CardReadError(
            "Kortet kunde inte läsas: " + first.message,
            "The card could not be read: " + first.message_en,
        )
    details_sv = " ".join(f.message for f in failures)
    details_en = " ".join(f.message_en for f in failures)
    raise CardReadError(
        "Kortets nummer kunde inte läsas. " + details_sv,
        "The card's serial could not be read. " + details_en,
    )
