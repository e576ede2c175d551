"""The return desk in a real browser: Servicecenter chooses once that the cards of a batch go
back into stock, then returns cards one after another, by typing a serial and pressing Enter
(as a keyboard-wedge scanner does) and by the reader bridge filling the field (its "input" and
"change" events); a bad serial is named with its reason and the batch goes on. The batch
screen passes axe-core and does not scroll sideways on a phone."""

import json
import urllib.request
from datetime import date, timedelta

import pytest
from playwright.sync_api import expect

from tests.conftest import DEMO_PASSWORD

pytest.register_assert_rewrite("tests.browser_support")
from tests.browser_support import (  # noqa: E402
    AXE,
    STEP_TIMEOUT_MS,
    VIEWPORT,
    BrowserProblems,
    axe_violations,
    open_from_menu,
    sideways_scroll,
)

pytest_plugins = ("tests.browser_support",)  # live_server, browser, login_page, screenshots
pytestmark = [pytest.mark.browser, pytest.mark.postgresql_only,
              pytest.mark.xdist_group("browser_return_desk")]

SERIALS = ["9752273000000001", "9752273000000002", "9752273000000003"]
# Anna, Björn, and Cecilia, whose card stays out
RECIPIENTS = ["SE2321000131-E000000000001", "SE2321000131-E000000000002",
              "SE2321000131-E000000000003"]
UNKNOWN = "9752273999999999"


def _api(live_server, path, body=None, token=None):
    request = urllib.request.Request(
        live_server.url(path), data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json",
                 **({"Authorization": f"Bearer {token}"} if token else {})},
        method="POST" if body is not None else "GET")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _token(live_server, username):
    return _api(live_server, "/api/v1/security/login", {
        "username": username, "password": DEMO_PASSWORD, "provider": "db",
        "refresh": False})["access_token"]


@pytest.fixture(scope="module")
def cards_out(live_server):
    """Three new envelopes, each issued to a person through the REST API: serial -> id."""
    servicecenter = _token(live_server, "servicecenter")
    point = _api(live_server, "/api/v1/pickup-points/", token=servicecenter)["result"][0]
    _api(live_server, "/api/v1/cards/batch", {
        "serials": SERIALS, "product_code": "573", "loa": "LOA2",
        "expires_on": (date.today() + timedelta(days=3 * 365)).isoformat(),
        "pickup_point_id": point["id"]}, token=servicecenter)
    attester = _token(live_server, "intygsgivare1")
    issued = {}
    for serial, recipient in zip(SERIALS, RECIPIENTS, strict=True):
        issued[serial] = _api(live_server, "/api/v1/issuances/", {
            "card_serial": serial, "recipient_hsa_id": recipient, "reason": "forgotten",
            "password": DEMO_PASSWORD,
            "second_attester": {"username": "intygsgivare2", "password": DEMO_PASSWORD},
            "recipient_present": True, "envelope_unopened": True}, token=attester)["id"]
    return issued


@pytest.fixture
def servicecenter_page(browser, live_server):
    """Servicecenter logged in; the context lets the test inject axe-core past the site's
    Content-Security-Policy (the site itself still runs under it). No JavaScript or server
    error on any page."""
    problems = BrowserProblems()
    context = browser.new_context(viewport=VIEWPORT, locale="sv-SE", bypass_csp=True)
    context.set_default_timeout(STEP_TIMEOUT_MS)
    page = context.new_page()
    problems.watch(page)
    page.goto(live_server.url("/login/"))
    page.fill("input[name=username]", "servicecenter")
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("form[name=login] [type=submit]")
    page.wait_for_load_state()
    assert "/login" not in page.url
    yield page
    context.close()
    assert not problems.items, "the browser saw errors:\n" + "\n".join(problems.items)


def test_servicecenter_returns_a_batch_of_cards_by_scanning(servicecenter_page, screenshots,
                                                             live_server, cards_out):
    page = servicecenter_page
    serials = list(cards_out)
    open_from_menu(page, "/returns/")
    page.get_by_role("link", name="Skanningsläge: återlämna många kort i följd").click()
    page.wait_for_url("**/returns/scan/")
    page.get_by_label("Korten läggs tillbaka i lager").check()
    page.get_by_role("button", name="Börja skanna").click()

    field = page.get_by_label("Kortnummer på det återlämnade kortet")
    expect(field).to_be_focused()  # ready for the first card
    field.fill(serials[0])
    field.press("Enter")  # as a keyboard-wedge scanner ends its serial
    latest = page.locator(".rk-scan-latest")
    expect(latest).to_contain_text(f"{serials[0]}: Kortet återlämnat. Återlämnat och "
                                   "tillbaka i lager.")

    field = page.get_by_label("Kortnummer på det återlämnade kortet")
    expect(field).to_be_focused()
    field.fill(UNKNOWN)
    field.press("Enter")
    expect(latest).to_contain_text(f"Kortet {UNKNOWN} finns inte i lagret.")
    expect(page.locator(".rk-scan-latest[role=alert]")).to_have_count(1)

    # The reader bridge puts the serial in the focused field and fires input and change
    # (app/static/js/reader-bridge.js); the page sends it on by itself.
    page.evaluate("""serial => { const field = document.activeElement;
        field.value = serial;
        field.dispatchEvent(new Event('input', {bubbles: true}));
        field.dispatchEvent(new Event('change', {bubbles: true})); }""", serials[1])
    expect(latest).to_contain_text(f"{serials[1]}: Kortet återlämnat.")

    rows = page.locator("table.rk-scan-results tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(1)).to_contain_text("Inte återlämnat")
    expect(page.locator(".rk-scan-mode")).to_contain_text(
        "2 kort återlämnade, 1 kortnummer avvisat")
    screenshots(page, "servicecenter", "7-return-desk-scan")

    assert AXE.is_file(), f"axe-core is not installed at {AXE} (run make dev-deps)"
    page.set_viewport_size({"width": 360, "height": 800})
    page.reload()
    assert axe_violations(page) == []
    assert sideways_scroll(page) is None
    screenshots(page, "servicecenter", "7-return-desk-scan-phone")

    # The issuance page of a returned card: returned, its card back in stock, nothing due.
    rows.first.get_by_role("link").click()
    expect(page.locator(".rk-issuance-status")).to_have_text("Återlämnad")
    expect(page.locator(".rk-due-none")).to_be_visible()
    expect(page.locator("table.issuance-history")).to_contain_text("Kortet återlämnat")
    expect(page.locator("table.issuance-history")).to_contain_text("Gustav Gran")
    for width in (360, 1280):  # the issuance page too: axe-core, and no sideways scrolling
        page.set_viewport_size({"width": width, "height": 800})
        page.reload()
        assert axe_violations(page) == [], f"{width}px {page.url}"
        assert width > 1000 or sideways_scroll(page) is None
    screenshots(page, "servicecenter", "8-issuance-returned")

    # A card still out: its page leads with the status, what is due and the actions.
    page.goto(live_server.url(f"/issuances/show/{cards_out[serials[2]]}"))
    state = page.locator(".rk-issuance-state")
    expect(state).to_contain_text("Väntar på godkännande av Televäxeln")
    expect(state).to_contain_text("Kvittensen ska vara inne senast")
    state.get_by_role("link", name="Spärra").click()
    expect(page.locator("#block_reason")).to_be_in_viewport()
    for width in (360, 1280):
        page.set_viewport_size({"width": width, "height": 800})
        page.reload()
        assert axe_violations(page) == [], f"{width}px {page.url}"
        assert width > 1000 or sideways_scroll(page) is None
    screenshots(page, "servicecenter", "9-issuance-out")
