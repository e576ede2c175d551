"""The reader bridge against a real pcscd with vpcd virtual readers and cards.

Pure parsing tests first, then pyscard directly, then the bridge subprocess
through its SSE stream and HTTP endpoints.
"""

from __future__ import annotations

import json

import pytest

from reader_bridge.serial_reader import (
    CardReadError,
    NotSupported,
    decode_bcd,
    find_tlv,
    format_uid,
    parse_ber_tlv,
    parse_gdo,
    parse_sources,
    read_serial,
)
from tests.pcsc_support import (  # noqa: F401 - fixtures are used by name
    GarbageCard,
    GdoCard,
    SilentCard,
    UidCard,
    gdo_content,
    pcscd,
    reader_bridge,
    reader_card_present,
    virtual_cards,
    wait_until,
)

ICCID = "8946000000012345678"
ORIGIN = "http://127.0.0.1:5000"


# --------------------------------------------------------------------------
# pure functions
# --------------------------------------------------------------------------


def test_bcd_strips_trailing_f_padding():
    assert decode_bcd(bytes.fromhex("89460000000123456780")) == "89460000000123456780"
    assert decode_bcd(bytes.fromhex("894600000001234567 8F".replace(" ", ""))) == ICCID
    assert decode_bcd(bytes.fromhex("12FF")) == "12"


@pytest.mark.parametrize("raw", ["8A46", "F123", "FF", ""])
def test_bcd_rejects_non_digits(raw):
    with pytest.raises(ValueError):
        decode_bcd(bytes.fromhex(raw))


def test_ber_tlv_parsing():
    data = bytes.fromhex("00 5A 02 1234 FF 5F20 03 414243 70 04 5A 02 5678".replace(" ", ""))
    assert parse_ber_tlv(data) == [(0x5A, b"\x12\x34"), (0x5F20, b"ABC"), (0x70, bytes.fromhex("5A025678"))]
    # long form length
    assert parse_ber_tlv(bytes.fromhex("5A8103010203")) == [(0x5A, b"\x01\x02\x03")]
    assert find_tlv(bytes.fromhex("7004 5A02 5678"), 0x5A) == b"\x56\x78"
    assert find_tlv(bytes.fromhex("5F200141"), 0x5A) is None


@pytest.mark.parametrize("raw", ["5A05 0102", "5A", "5F", "5A80 00", "5A84 00000001 00"])
def test_ber_tlv_rejects_malformed(raw):
    with pytest.raises(ValueError):
        parse_ber_tlv(bytes.fromhex(raw.replace(" ", "")))


def test_parse_gdo():
    assert parse_gdo(gdo_content(ICCID)) == ICCID
    assert parse_gdo(bytes.fromhex("E00C5A0A") + bytes.fromhex("8946000000012345678F") + b"\xff" * 8) == ICCID
    with pytest.raises(NotSupported):
        parse_gdo(bytes.fromhex("5F200141"))
    with pytest.raises(CardReadError) as exc:
        parse_gdo(bytes.fromhex("5A0A8946"))
    assert "EF.GDO" in exc.value.message
    with pytest.raises(CardReadError):
        parse_gdo(bytes.fromhex("5A02ABCD"))


def test_format_uid_and_sources():
    assert format_uid(bytes.fromhex("04a1b2c3")) == "04A1B2C3"
    with pytest.raises(CardReadError):
        format_uid(b"\x01")
    assert parse_sources("uid, GDO") == ("uid", "gdo")
    assert parse_sources(["gdo", "gdo"]) == ("gdo",)
    with pytest.raises(ValueError):
        parse_sources("gdo,magstripe")
    with pytest.raises(ValueError):
        parse_sources(" , ")


class FakeCard:
    """transmit() for the APDU sequence tests, scripted by command prefix."""

    def __init__(self, script: dict[str, str]) -> None:
        self.script = {k.replace(" ", ""): v.replace(" ", "") for k, v in script.items()}
        self.sent: list[str] = []

    def __call__(self, apdu: bytes) -> bytes:
        hexa = apdu.hex().upper()
        self.sent.append(hexa)
        for prefix, answer in self.script.items():
            if hexa.startswith(prefix):
                return bytes.fromhex(answer)
        return bytes.fromhex("6D00")


def test_read_serial_gdo_with_get_response_and_wrong_le():
    card = FakeCard(
        {
            "00A4000C023F00": "9000",
            "00A4020C022F02": "6A86",  # P2=0C refused ...
            "00A4020002 2F02": "6112",  # ... FCI available via GET RESPONSE
            "00C0000012": "6F10" + "00" * 16 + "9000",
            "00B0000000": "6C0C",  # wrong Le
            "00B000000C": "5A0A8946000000012345678F9000",
        }
    )
    assert read_serial(card, ("gdo", "uid")) == (ICCID, "gdo")
    assert "00B000000C" in card.sent


def test_read_serial_falls_back_to_uid():
    card = FakeCard({"00A4": "6A82", "FFCA000000": "04A1B2C3D4E5F6 9000"})
    assert read_serial(card, ("gdo", "uid")) == ("04A1B2C3D4E5F6", "uid")
    assert read_serial(card, ("uid", "gdo")) == ("04A1B2C3D4E5F6", "uid")
    assert card.sent[-1] == "FFCA000000"


def test_read_serial_garbage_gives_readable_error():
    card = FakeCard({"00A4": "9000", "00B0": "5A40 8946 9000", "FFCA": "13"})
    with pytest.raises(CardReadError) as exc:
        read_serial(card, ("gdo", "uid"))
    assert exc.value.message.startswith("Kortet kunde inte läsas")
    assert "could not be read" in exc.value.message_en
    with pytest.raises(CardReadError) as exc:
        read_serial(FakeCard({}), ("gdo", "uid"))
    assert "6D00" in exc.value.message_en


# --------------------------------------------------------------------------
# pyscard against pcscd + vpcd
# --------------------------------------------------------------------------


def test_pyscard_sees_virtual_readers_and_card(pcscd, virtual_cards):
    from smartcard.System import readers
    from smartcard.util import toHexString

    names = [str(r) for r in readers()]
    assert names == pcscd.readers and len(names) == 2
    virtual_cards(GdoCard(ICCID), 0)
    wait_until(lambda: reader_card_present(names[0]), 10, "the card in reader 0")
    assert reader_card_present(names[1]) is False

    connection = readers()[0].createConnection()
    connection.connect()
    try:
        assert toHexString(connection.getATR()).startswith("3B 88 80 01")
        data, sw1, sw2 = connection.transmit(list(bytes.fromhex("00A4000C023F00")))
        assert (sw1, sw2) == (0x90, 0x00)
        connection.transmit(list(bytes.fromhex("00A4020C022F02")))
        data, sw1, sw2 = connection.transmit(list(bytes.fromhex("00B0000000")))
        assert (sw1, sw2) == (0x62, 0x82)
        assert parse_gdo(bytes(data)) == ICCID
    finally:
        connection.disconnect()


# --------------------------------------------------------------------------
# the bridge subprocess
# --------------------------------------------------------------------------


def _status_ready(stream, readers):
    """Wait until a status event lists the given readers with pcsc up."""
    return stream.wait_for(
        "status", lambda d: d["pcsc"] and [r["name"] for r in d["readers"]] == readers, current=True
    )


def test_insert_and_remove_card(pcscd, virtual_cards, reader_bridge):
    bridge = reader_bridge()
    events = bridge.events()
    first = events.next()
    assert first[0] == "status"  # a new client gets the status right away
    _status_ready(events, pcscd.readers)

    card = virtual_cards(GdoCard(ICCID), 0)
    inserted = events.wait_for("card-inserted")
    assert inserted == {"reader": pcscd.readers[0], "serial": ICCID, "source": "gdo"}
    status = bridge.status()
    assert status["readers"][0]["card_present"] is True
    assert status["readers"][0]["serial"] == ICCID

    card.remove()
    assert events.wait_for("card-removed") == {"reader": pcscd.readers[0]}
    assert bridge.status()["readers"][0]["serial"] is None

    # a second client late in the game also gets the status first
    late = bridge.events()
    name, data = late.next()
    assert name == "status" and data["pcsc"] is True and len(data["readers"]) == 2


def test_two_readers_at_once_and_uid_fallback(pcscd, virtual_cards, reader_bridge):
    bridge = reader_bridge()
    events = bridge.events()
    _status_ready(events, pcscd.readers)
    other = bridge.events()  # a second browser tab

    virtual_cards(GdoCard("8946990000000000017"), 0)
    virtual_cards(UidCard("04A1B2C3D4E5F6"), 1)
    got = {}
    for _ in range(2):
        data = events.wait_for("card-inserted")
        got[data["reader"]] = (data["serial"], data["source"])
    assert got == {
        pcscd.readers[0]: ("8946990000000000017", "gdo"),
        pcscd.readers[1]: ("04A1B2C3D4E5F6", "uid"),
    }
    # the second client got the same events
    seen = {other.wait_for("card-inserted")["reader"], other.wait_for("card-inserted")["reader"]}
    assert seen == set(pcscd.readers)
    status = wait_until(
        lambda: (s := bridge.status()) and all(r["serial"] for r in s["readers"]) and s, 5, "status"
    )
    assert [r["card_present"] for r in status["readers"]] == [True, True]


def test_sources_option_order(pcscd, virtual_cards, reader_bridge):
    bridge = reader_bridge("--sources", "uid")
    events = bridge.events()
    _status_ready(events, pcscd.readers)
    virtual_cards(GdoCard(ICCID), 0)  # a contact card has no UID: error, not the ICCID
    error = events.wait_for("error")
    assert error["reader"] == pcscd.readers[0]
    assert "UID" in error["message"]
    assert bridge.status()["sources"] == ["uid"]


def test_garbage_card_gives_error_event(pcscd, virtual_cards, reader_bridge):
    bridge = reader_bridge()
    events = bridge.events()
    _status_ready(events, pcscd.readers)
    virtual_cards(GarbageCard(), 1)
    error = events.wait_for("error")
    assert error["reader"] == pcscd.readers[1]
    assert error["message"].startswith("Kortet kunde inte läsas")
    assert error["message_en"]
    status = bridge.status()
    assert status["readers"][1]["error"] == error["message"]
    assert bridge.proc.poll() is None


def test_silent_card_times_out_and_removal_mid_read(pcscd, virtual_cards, reader_bridge):
    bridge = reader_bridge("--read-timeout", "1")
    events = bridge.events()
    _status_ready(events, pcscd.readers)
    card = virtual_cards(SilentCard(), 0)
    error = events.wait_for("error", timeout=10)
    assert error["reader"] == pcscd.readers[0]
    assert "svarar inte" in error["message"]
    # pull the card while the bridge is still stuck in the read
    card.remove()
    assert events.wait_for("card-removed") == {"reader": pcscd.readers[0]}
    # the bridge lives on and reads the next card
    virtual_cards(GdoCard(ICCID), 0)
    assert events.wait_for("card-inserted")["serial"] == ICCID
    assert bridge.proc.poll() is None


def test_bridge_waits_for_pcscd_and_recovers(pcscd, virtual_cards, reader_bridge):
    pcscd.stop()
    try:
        bridge = reader_bridge()
        events = bridge.events()
        name, data = events.next()
        assert name == "status"
        wait_until(lambda: bridge.status()["pcsc"] is False, 5, "status pcsc=false")
        assert bridge.status()["readers"] == []
        assert bridge.status()["message"]

        pcscd.start()
        _status_ready(events, pcscd.readers)
        virtual_cards(UidCard("04112233"), 0)
        assert events.wait_for("card-inserted")["serial"] == "04112233"

        # pcscd restarts under a running bridge: card-removed, then back again
        pcscd.stop()
        assert events.wait_for("card-removed") == {"reader": pcscd.readers[0]}
        events.wait_for("status", lambda d: d["pcsc"] is False)
        pcscd.start()
        _status_ready(events, pcscd.readers)
        virtual_cards(GdoCard(ICCID), 1)
        assert events.wait_for("card-inserted") == {
            "reader": pcscd.readers[1],
            "serial": ICCID,
            "source": "gdo",
        }
        assert bridge.proc.poll() is None
    finally:
        if not pcscd.running:
            pcscd.start()


def test_cors_private_network_and_host(pcscd, reader_bridge):
    bridge = reader_bridge("--origin", ORIGIN + ",http://localhost:5000")

    ok = bridge.request("GET", "/status", {"Origin": ORIGIN})
    assert ok.status == 200
    assert ok.getheader("Access-Control-Allow-Origin") == ORIGIN
    assert json.loads(ok.body)["pcsc"] in (True, False)
    second = bridge.request("GET", "/status", {"Origin": "http://localhost:5000"})
    assert second.getheader("Access-Control-Allow-Origin") == "http://localhost:5000"

    evil = bridge.request("GET", "/status", {"Origin": "https://evil.example"})
    assert evil.status == 200
    assert evil.getheader("Access-Control-Allow-Origin") is None
    assert bridge.request("GET", "/status").getheader("Access-Control-Allow-Origin") is None

    preflight = bridge.request(
        "OPTIONS",
        "/events",
        {
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Private-Network": "true",
        },
    )
    assert preflight.status == 204
    assert preflight.getheader("Access-Control-Allow-Origin") == ORIGIN
    assert preflight.getheader("Access-Control-Allow-Private-Network") == "true"
    assert "GET" in preflight.getheader("Access-Control-Allow-Methods")

    plain = bridge.request("OPTIONS", "/events", {"Origin": ORIGIN, "Access-Control-Request-Method": "GET"})
    assert plain.getheader("Access-Control-Allow-Private-Network") is None

    denied = bridge.request(
        "OPTIONS",
        "/events",
        {
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Private-Network": "true",
        },
    )
    assert denied.getheader("Access-Control-Allow-Origin") is None
    assert denied.getheader("Access-Control-Allow-Private-Network") is None

    # the SSE stream carries the same CORS decision
    stream = bridge.events({"Origin": ORIGIN})
    assert stream.response.getheader("Access-Control-Allow-Origin") == ORIGIN
    assert stream.response.getheader("Content-Type").startswith("text/event-stream")
    other = bridge.events({"Origin": "https://evil.example"})
    assert other.response.getheader("Access-Control-Allow-Origin") is None

    # DNS rebinding: a foreign Host name is refused
    assert bridge.request("GET", "/status", {"Host": "evil.example:%d" % bridge.port}).status == 403
    assert bridge.request("GET", "/status", {"Host": "localhost:%d" % bridge.port}).status == 200
    assert bridge.request("GET", "/nope").status == 404

    # loopback only
    assert bridge.proc.poll() is None
    listening = [line for line in open("/proc/net/tcp").read().splitlines()[1:] if line.split()[3] == "0A"]
    port_hex = "%04X" % bridge.port
    local = [line.split()[1] for line in listening if line.split()[1].endswith(":" + port_hex)]
    assert local == ["0100007F:" + port_hex]
