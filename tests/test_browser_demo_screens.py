"""The living demo on a real server, in a real browser: each role's main screen has content on
first login. These are the README's screenshots (test-artifacts/screenshots/readme-*.png; the
README's copies live in docs/screenshots/ under the same names without the prefix)."""

import pytest
from playwright.sync_api import expect

pytest.register_assert_rewrite("tests.browser_support")
from tests.browser_support import open_from_menu, serve  # noqa: E402

pytest_plugins = ("tests.browser_support",)  # browser, login_page, screenshots

pytestmark = [pytest.mark.browser, pytest.mark.postgresql_only,
              pytest.mark.xdist_group("browser_demo_screens")]


@pytest.fixture(scope="module")
def live_server(living_template, tmp_path_factory):
    """The server on the living demo (app.demo.load_living) instead of the base demo."""
    yield from serve(living_template, tmp_path_factory)


def test_start_page_shows_the_days_work(login_page, screenshots):
    page = login_page("Servicecenter")
    counts = page.locator(".rk-count")
    expect(counts.first).to_be_visible()
    values = [int(v) for v in counts.evaluate_all("els => els.map(e => e.dataset.value)")]
    assert all(values), values
    screenshots(page, "readme", "start")


def test_wizard_with_a_card_from_stock(login_page, screenshots):
    page = login_page("Intygsgivare")
    open_from_menu(page, "/ansokan/")
    page.wait_for_url("**/kort")
    page.fill("input[name=serial]", "9752270000000002")
    page.get_by_role("button", name="Nästa").click()
    page.wait_for_url("**/mottagare")
    page.fill("input[name=query]", "SE2321000131-E000000000001")
    page.get_by_role("button", name="Sök").click()
    expect(page.locator(".rk-recipient-facts")).to_contain_text("Anna Åkesson")
    screenshots(page, "readme", "wizard")


def test_approval_queue(login_page, screenshots):
    page = login_page("Televäxeln")
    open_from_menu(page, "/approval/")
    expect(page.locator("table.approval-queue tbody tr")).to_have_count(2)
    expect(page.locator("table.approval-queue")).to_contain_text("9752270000000101")
    screenshots(page, "readme", "approval-queue")


def test_stock(login_page, screenshots):
    page = login_page("Servicecenter")
    open_from_menu(page, "/stock/cards/list/")
    expect(page.locator("table").first).to_contain_text("Servicecenter Halmstad")
    screenshots(page, "readme", "stock")


def test_deviations_of_the_managers_units(login_page, screenshots):
    page = login_page("Chef")
    open_from_menu(page, "/deviations/list/")
    for serial in ("9752270000000105", "9752270000000108", "9752270000000114"):
        expect(page.locator("table tr", has_text=serial)).to_have_count(1)
    screenshots(page, "readme", "deviations")


def test_mail_flow(login_page, screenshots):
    page = login_page("Korthandläggare")
    open_from_menu(page, "/mail-flow/")
    for serial in ("9752270000000115", "9752270000000116", "9752270000000117"):
        expect(page.get_by_text(serial).first).to_be_visible()
    screenshots(page, "readme", "mail-flow")
