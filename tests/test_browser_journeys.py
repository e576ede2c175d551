"""End-to-end journeys in a real browser, one per role, against gunicorn on PostgreSQL and Redis.

The journeys build on each other in file order, as the work does: Servicecenter registers a batch
of envelopes, two attesters issue a card from it to Anna Åkesson, Televäxeln approves, Servicecenter
registers the receipt, extends and takes the card back, a card handler sends another card by
registered mail, and the manager exports the deviation the deadline sweep reports for it.
Each main screen is saved as a full-page screenshot under test-artifacts/screenshots/.
"""

import csv
import io
import re
from datetime import date, timedelta

import pytest
from playwright.sync_api import expect

from tests.conftest import DEMO_PASSWORD

pytest.register_assert_rewrite("tests.browser_support")
from tests.browser_support import open_from_menu  # noqa: E402

pytest_plugins = ("tests.browser_support",)  # live_server, browser, login_page, screenshots
# The journeys continue each other: under pytest-xdist they stay on one worker (--dist loadgroup).
pytestmark = [pytest.mark.browser, pytest.mark.postgresql_only,
              pytest.mark.xdist_group("browser_journeys")]

BATCH = [f"975227100000000{n}" for n in range(1, 6)]
WIZARD_SERIAL, MAIL_SERIAL = BATCH[0], BATCH[1]
ANNA = ("Anna Åkesson", "SE2321000131-E000000000001")
HELENA = ("Helena Håkansson", "SE2321000131-E000000000008")
KOBE_REFERENCE = "KOBE-2026-000123"
REGISTERED_MAIL_NUMBER = "RR123456785SE"


@pytest.fixture(scope="module")
def journey():
    """What one journey leaves for the next (issuance ids, the end date)."""
    return {}


def earlier(journey, key):
    """What an earlier journey left; the journeys run in file order, as the work does."""
    assert key in journey, f"run the whole module: this journey continues from '{key}'"
    return journey[key]


def success_message(page):
    return page.locator(".alert-success")


def fetch_pdf(page, href) -> bytes:
    """Fetch a PDF link with the page's session, as the browser would open it."""
    response = page.request.get(href)
    assert response.status == 200, f"{href}: HTTP {response.status}"
    assert response.headers["content-type"].startswith("application/pdf")
    body = response.body()
    assert body.startswith(b"%PDF"), f"{href} is not a PDF"
    return body


def test_servicecenter_registers_a_batch_of_envelopes(login_page, live_server, screenshots):
    page = login_page("Servicecenter")
    expect(page.locator("h1")).to_have_text("Reservkort")
    expect(page.locator(".rk-count").first).to_be_visible()
    screenshots(page, "servicecenter", "1-start")

    open_from_menu(page, "/stock/register/")
    expect(page.get_by_role("button", name="Registrera kuvert")).to_be_visible()
    page.fill("#first", BATCH[0])
    page.fill("#last", BATCH[-1])
    page.fill("#product_code", "573")
    page.select_option("#loa", "LOA2")
    expires = date.today().replace(day=1) + timedelta(days=3 * 365)
    page.fill("#expires_on", expires.isoformat())
    page.select_option("#pickup_point_id", label="Servicecenter Halmstad")
    screenshots(page, "servicecenter", "2-register-envelopes")
    page.get_by_role("button", name="Registrera kuvert").click()

    page.wait_for_url("**/stock/cards/list/**")
    expect(success_message(page)).to_contain_text(str(len(BATCH)))
    screenshots(page, "servicecenter", "3-stock")
    page.goto(live_server.url(f"/stock/cards/list/?_flt_0_serial={BATCH[0][:-1]}"))
    for serial in BATCH:
        expect(page.locator("table").get_by_text(serial, exact=True)).to_be_visible()


def test_two_attesters_complete_the_wizard(login_page, live_server, screenshots, journey):
    page = login_page("Intygsgivare")
    open_from_menu(page, "/ansokan/")

    page.wait_for_url("**/kort")
    page.fill("input[name=serial]", WIZARD_SERIAL)
    screenshots(page, "wizard", "1-card")
    page.get_by_role("button", name="Nästa").click()

    page.wait_for_url("**/mottagare")
    page.fill("input[name=query]", ANNA[1])
    page.get_by_role("button", name="Sök").click()
    expect(page.locator(".rk-recipient-facts")).to_contain_text(ANNA[0])
    screenshots(page, "wizard", "2-recipient")
    page.get_by_role("link", name="Nästa").click()

    page.wait_for_url("**/orsak")
    page.check("input[name=reason][value=forgotten]")
    screenshots(page, "wizard", "3-reason")
    page.get_by_role("button", name="Nästa").click()

    page.wait_for_url("**/intygsgivare")
    # Attester 1, the logged-in user, gives their own password again: being logged in is not
    # enough. Then the same step asks for the second attester.
    page.fill("input[name='me-password']", DEMO_PASSWORD)
    page.get_by_role("button", name="Autentisera").click()
    page.wait_for_load_state()
    expect(page.locator(".rk-attesters tr").first).to_contain_text("Gustav Gran")
    expect(page.locator(".rk-attesters tr").first).to_contain_text("autentiserad")
    page.fill("input[name=username]", "intygsgivare2")
    page.fill("input[name=password]", DEMO_PASSWORD)
    screenshots(page, "wizard", "4-attesters")
    page.get_by_role("button", name="Autentisera").click()

    page.wait_for_url("**/sammanfattning")
    summary = page.locator(".rk-summary")
    for text in (WIZARD_SERIAL, ANNA[0], "Gustav Gran", "Helena Håkansson"):
        expect(summary).to_contain_text(text)
    page.check("input[name=recipient_present]")
    page.check("input[name=envelope_unopened]")
    screenshots(page, "wizard", "5-summary")
    page.get_by_role("button", name="Slutför ansökan").click()

    page.wait_for_url(re.compile(r"/ansokan/\d+/klar$"))
    journey["in_person"] = int(re.search(r"/ansokan/(\d+)/klar", page.url).group(1))
    expect(page.locator("h1")).to_have_text("Ansökan är klar")
    expect(success_message(page)).to_contain_text(WIZARD_SERIAL)
    expect(success_message(page)).to_contain_text(ANNA[0])
    end_date = page.locator("tr", has_text="Slutdatum").locator("td").inner_text().strip()
    journey["in_person_end"] = date.fromisoformat(end_date).isoformat()
    screenshots(page, "wizard", "6-done")
    receipt_link = page.locator("a[href$='/kvittens.pdf']")
    fetch_pdf(page, live_server.url(receipt_link.get_attribute("href")))


def test_televaxeln_approves_in_the_queue(login_page, live_server, screenshots, journey):
    issuance_id = earlier(journey, "in_person")
    page = login_page("Televäxeln")
    open_from_menu(page, "/approval/")
    row = page.locator("table.approval-queue tbody tr", has_text=WIZARD_SERIAL)
    expect(row).to_contain_text(ANNA[0])
    screenshots(page, "televaxeln", "1-queue")
    row.get_by_role("link").click()

    page.wait_for_url(f"**/approval/{issuance_id}")
    checks = page.locator("form.approval-form input[type=checkbox]")
    assert checks.count() >= 4, "the approval shows each Kobe check to confirm"
    for index in range(checks.count()):
        checks.nth(index).check()
    page.fill("#kobe_reference", KOBE_REFERENCE)
    screenshots(page, "televaxeln", "2-check")
    page.get_by_role("button", name="Godkänn").click()

    page.wait_for_url("**/approval/")
    expect(success_message(page)).to_contain_text(str(issuance_id))
    expect(page.locator("table.approval-queue")).not_to_contain_text(WIZARD_SERIAL)


def test_servicecenter_registers_receipt_extends_and_takes_the_return(
        login_page, live_server, screenshots, journey):
    issuance_id = earlier(journey, "in_person")
    page = login_page("Servicecenter")

    open_from_menu(page, "/receipts/")
    page.fill("#serial", WIZARD_SERIAL)
    screenshots(page, "servicecenter", "4-receipts")
    page.get_by_role("button", name="Registrera kvittens").click()
    expect(success_message(page)).to_contain_text(WIZARD_SERIAL)

    open_from_menu(page, "/issuances/list/")
    page.fill("#rk-search-q", WIZARD_SERIAL)
    page.locator("#filter_form button[type=submit]").click()
    page.locator(f"a[href$='/issuances/show/{issuance_id}']").click()
    page.wait_for_url(f"**/issuances/show/{issuance_id}")
    extend_form = page.locator(f"form[action$='/issuances/{issuance_id}/extend']")
    extend_form.locator("input[name=same_reason]").check()
    screenshots(page, "servicecenter", "5-issuance")
    extend_form.get_by_role("button", name="Förläng").click()
    expect(success_message(page)).to_be_visible()
    expect(page.locator(f"form[action$='/issuances/{issuance_id}/extend']")).to_have_count(0)
    # Extended once by the original length (10 days for a forgotten card).
    extended_to = date.fromisoformat(earlier(journey, "in_person_end")) + timedelta(days=10)
    history = page.locator("table.issuance-history tr", has_text="Giltighetstiden förlängd")
    expect(history).to_contain_text(f"Giltig till: {extended_to.isoformat()}")

    open_from_menu(page, "/returns/")
    page.fill("#serial", WIZARD_SERIAL)
    page.get_by_role("button", name="Registrera återlämning").click()
    expect(success_message(page)).to_contain_text(WIZARD_SERIAL)
    returned = page.locator("table.returned-cards tbody tr", has_text=WIZARD_SERIAL)
    expect(returned).to_have_count(1)
    screenshots(page, "servicecenter", "6-returns")
    returned.locator("form[action$='/restock'] button[type=submit]").click()
    expect(success_message(page)).to_contain_text(WIZARD_SERIAL)
    expect(page.locator("table.returned-cards tbody tr", has_text=WIZARD_SERIAL)).to_have_count(0)


def mail_status(page):
    return page.locator(".rk-mail-issuance td.rk-status")


def test_card_handler_walks_the_mail_flow(login_page, live_server, screenshots, journey):
    page = login_page("Korthandläggare")
    open_from_menu(page, "/mail-flow/")
    page.fill("#card_serial", MAIL_SERIAL)
    page.fill("#recipient_hsa_id", HELENA[1])
    page.select_option("#reason", "forgotten")
    page.fill("#address", "Helena Håkansson\nVårdcentralen Hylte\nStorgatan 1\n314 30 Hyltebruk")
    page.fill("#justification", "Arbetar på distans; ingen behörig administratör på plats.")
    screenshots(page, "mail-flow", "1-prepare")
    page.locator("form.rk-mail-prepare button[type=submit]").click()

    page.wait_for_url(re.compile(r"/mail-flow/issuance/\d+$"))
    journey["mail"] = int(page.url.rsplit("/", 1)[1])
    expect(mail_status(page)).to_have_attribute("data-status", "prepared")
    fetch_pdf(page, live_server.url(page.locator("a[href$='/letter.pdf']").get_attribute("href")))
    screenshots(page, "mail-flow", "2-prepared")

    page.fill("#registered_mail_number", REGISTERED_MAIL_NUMBER)
    page.locator("form[action$='/dispatched'] button[type=submit]").click()
    expect(mail_status(page)).to_have_attribute("data-status", "sent")
    page.locator("form[action$='/receipt-returned'] button[type=submit]").click()
    expect(mail_status(page)).to_have_attribute("data-status", "receipt_received")
    certificate = page.locator("form[action$='/certificate-issued']")
    certificate.locator("input[name=confirm]").check()
    certificate.locator("button[type=submit]").click()
    expect(mail_status(page)).to_have_attribute("data-status", "active")
    expect(page.locator(".rk-mail-issuance")).to_contain_text(
        "Identifierad med rekommenderad post")
    screenshots(page, "mail-flow", "3-active")

    page.goto(live_server.url("/mail-flow/"))
    expect(page.locator("table.rk-mail-active")).to_contain_text(MAIL_SERIAL)
    screenshots(page, "mail-flow", "4-overview")


def test_manager_downloads_the_deviation_export(login_page, live_server, screenshots, journey):
    earlier(journey, "mail")  # the card sent by registered mail is never returned
    # Well past the end date and the grace period: the sweep reports the card not returned.
    later = date.today() + timedelta(days=40)
    sweep = live_server.start_cli("sweep", "--at", f"{later.isoformat()}T12:00:00")
    page = login_page("Chef")
    output = sweep.output()
    assert re.search(r"^not_returned: 1$", output, re.M), output

    open_from_menu(page, "/deviations/list/")
    deviation = page.locator("table tr", has_text=MAIL_SERIAL)
    expect(deviation).to_contain_text(HELENA[0])
    expect(deviation).to_contain_text("Reservkort ej återlämnat")
    screenshots(page, "chef", "1-deviations")

    open_from_menu(page, "/deviations/report/")
    screenshots(page, "chef", "2-report")
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Ladda ner CSV").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".csv")
    with open(download.path(), encoding="utf-8-sig") as handle:
        rows = list(csv.reader(io.StringIO(handle.read()), delimiter=";"))
    header, body = rows[0], rows[1:]
    assert header[:3] == ["Avvikelse", "Skapad", "Typ"], header
    report = [dict(zip(header, row, strict=True)) for row in body]
    assert [row["Kortnummer"] for row in report] == [MAIL_SERIAL], rows
    assert report[0]["Namn"] == HELENA[0]
    assert report[0]["Typ"] == "Reservkort ej återlämnat"
