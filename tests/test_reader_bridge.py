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
from tests import pcsc_support
from tests.pcsc_support import (
    GarbageCard,
    GdoCard,
    SilentCard,
    UidCard,
    gdo_content,
    reader_card_present,
    wait_until,
)

# the fixtures, whether or not conftest also loads tests.pcsc_support as a plugin
pcscd = pcsc_support.pcscd
virtual_cards = pcsc_support.virtual_cards
reader_bridge = pcsc_support.reader_bridge

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
    assert parse_ber_tlv(data) == [
        (0x5A, b"\x12\x34"),
        (0x5F20, b"ABC"),
        (0x70, bytes.fromhex("5A025678")),
    ]
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
    wrapped = bytes.fromhex("E00C5A0A") + bytes.fromhex("8946000000012345678F") + b"\xff" * 8
    assert parse_gdo(wrapped) == ICCID
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

    plain = bridge.request(
        "OPTIONS", "/events", {"Origin": ORIGIN, "Access-Control-Request-Method": "GET"}
    )
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
    assert bridge.request("GET", "/status", {"Host": f"evil.example:{bridge.port}"}).status == 403
    assert bridge.request("GET", "/status", {"Host": f"localhost:{bridge.port}"}).status == 200
    assert bridge.request("GET", "/nope").status == 404

    # loopback only
    assert bridge.proc.poll() is None
    rows = open("/proc/net/tcp").read().splitlines()[1:]
    listening = [line for line in rows if line.split()[3] == "0A"]
    port_hex = f"{bridge.port:04X}"
    local = [line.split()[1] for line in listening if line.split()[1].endswith(":" + port_hex)]
    assert local == ["0100007F:" + port_hex]


# --------------------------------------------------------------------------
# the browser side: app/static/js/reader-bridge.js in headless Chromium
# --------------------------------------------------------------------------

PAGE_PROBE_JS = b"""
(function () {
  var last = "", log = [], input = document.getElementById("serial");
  input.addEventListener("input", function () { log.push("input:" + input.value); });
  input.addEventListener("change", function () { log.push("change:" + input.value); });
  input.focus();
  setInterval(function () {
    var span = document.querySelector(".reader-bridge-status");
    var state = JSON.stringify({
      value: input.value, log: log,
      status: span ? span.textContent : null, hidden: span ? span.hidden : null
    });
    if (state !== last) { last = state; fetch("/probe", { method: "POST", body: state }); }
  }, 100);
})();
"""


@pytest.mark.browser
def test_browser_script_fills_the_field(pcscd, virtual_cards, reader_bridge, tmp_path):
    import shutil
    import subprocess
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from pathlib import Path

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("headless Chromium is needed: apt-get install -y chromium", pytrace=False)
    script = Path(__file__).resolve().parent.parent / "app/static/js/reader-bridge.js"
    seen: dict = {}
    bridge_port: list[int] = []

    class Page(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            if self.path == "/form":
                body = (
                    '<!doctype html><html><head><meta charset="utf-8"></head>'
                    f'<body data-reader-bridge-url="http://127.0.0.1:{bridge_port[0]}">'
                    '<input id="serial" name="serial" data-card-serial>'
                    '<script src="/reader-bridge.js"></script><script src="/probe.js"></script>'
                    "</body></html>"
                ).encode()
            elif self.path == "/reader-bridge.js":
                body = script.read_bytes()
            elif self.path == "/probe.js":
                body = PAGE_PROBE_JS
            else:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            kind = "text/html" if self.path == "/form" else "text/javascript"
            self.send_header("Content-Type", kind + "; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):  # noqa: N802
            seen.update(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

    web = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{web.server_address[1]}"
    bridge = reader_bridge("--origin", origin)
    bridge_port.append(bridge.port)
    browser = subprocess.Popen(
        [
            chromium,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            origin + "/form",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: seen.get("status") == "2 kortläsare anslutna", 30, "reader status")
        virtual_cards(GdoCard(ICCID), 0)
        wait_until(lambda: seen.get("value") == ICCID, 15, "the serial in the field")
        wait_until(lambda: seen.get("status") == f"Kort läst: {ICCID}", 5, "'Kort läst'")
        assert seen["log"] == [f"input:{ICCID}", f"change:{ICCID}"]

        virtual_cards(GarbageCard(), 1)
        wait_until(lambda: (seen.get("status") or "").startswith("Kortet kunde inte"), 10, "error")

        bridge.stop()  # no bridge any more: the status disappears quietly
        wait_until(lambda: seen.get("hidden") is True, 10, "the status to hide")
        assert seen["value"] == ICCID
    finally:
        browser.terminate()
        try:
            browser.wait(10)
        except subprocess.TimeoutExpired:
            browser.kill()
            browser.wait(5)
        web.shutdown()
        web.server_close()


@pytest.mark.browser
def test_wizard_serial_field_fills_itself_from_the_reader(pcscd, virtual_cards, reader_bridge,
                                                          app, in_stock_card):
    """The real back office in headless Chromium: a card put in the reader lands in the
    wizard's serial field, and the wizard moves on to the recipient step by itself."""
    import threading

    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server

    from tests.browser_support import CHROMIUM, CHROMIUM_ARGS

    serial = in_stock_card("LOA2").serial
    web = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{web.server_port}"
    bridge = reader_bridge("--origin", origin)
    app.config["READER_BRIDGE_URL"] = f"http://127.0.0.1:{bridge.port}"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                 args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(origin + "/login/")
            page.fill("input[name=username]", "intygsgivare1")
            page.fill("input[name=password]", "Reservkort-demo-2026")
            page.locator("input[type=submit], button[type=submit]").first.click()
            page.wait_for_load_state()
            page.goto(origin + "/ansokan/")
            field = page.locator("input[data-card-serial]")
            assert field.input_value() == ""
            page.wait_for_function(
                "() => /ansluten|anslutna/.test("
                "(document.querySelector('.reader-bridge-status') || {}).textContent || '')",
                timeout=30_000)
            virtual_cards(GdoCard(serial), 0)
            page.wait_for_url("**/mottagare", timeout=20_000)
            assert serial in page.content()
            browser.close()
    finally:
        web.shutdown()
