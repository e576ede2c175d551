"""Every screen of every role meets WCAG 2.1 A/AA as far as axe-core can tell, on a desktop and
on a phone, and no screen scrolls sideways on a phone.

Each role logs in, opens every item of its menu and the pages one click below them (links in
the page's content, same origin, GET only, one page per kind of address), and axe-core checks
each page at 1280 px and at 360 px (360 CSS px is also what a 720 px window shows at 200 %
zoom). axe-core comes from the npm package pinned in tests/axe/package.json (installed by
`make dev-deps`), never from the internet.
"""

import re
from urllib.parse import urljoin, urlsplit

import pytest

pytest.register_assert_rewrite("tests.browser_support")
from tests.browser_support import (  # noqa: E402
    AXE,
    SCREENSHOTS,
    STEP_TIMEOUT_MS,
    BrowserProblems,
    axe_violations,
    sideways_scroll,
)
from tests.conftest import DEMO_PASSWORD, ROLE_LOGINS  # noqa: E402

pytest_plugins = ("tests.browser_support",)  # live_server, browser
pytestmark = [pytest.mark.browser, pytest.mark.postgresql_only,
              pytest.mark.xdist_group("browser_accessibility")]

WIDTHS = (1280, 360)
MAX_PAGES_PER_ROLE = 60
# Links that change something, leave the session or download a file are not followed.
NOT_FOLLOWED = re.compile(
    r"^/back$|/(logout|lang|login)/|/delete|/action|/export|\.(pdf|csv|xlsx)$|/download|/_openapi"
    r"|/swagger|/api/", re.IGNORECASE)


def _kind(path: str) -> str:
    """One page per kind of address: /issuances/show/12 and /issuances/show/13 are one kind."""
    return re.sub(r"/\d+(?=/|$)", "/N", path.rstrip("/") or "/")


def _same_origin_links(page, base_url, selector):
    hrefs = page.eval_on_selector_all(
        selector, "els => els.map(e => e.getAttribute('href')).filter(Boolean)")
    origin = urlsplit(base_url).netloc
    links = []
    for href in hrefs:
        if href.startswith(("#", "javascript:", "mailto:", "tel:")):
            continue
        url = urljoin(page.url, href)
        parts = urlsplit(url)
        if parts.netloc != origin or NOT_FOLLOWED.search(parts.path):
            continue
        links.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    return links


def crawl(page, live_server):
    """The role's menu pages, then the pages one click below them; one address per kind."""
    page.goto(live_server.url("/"))
    menu = ["/"] + _same_origin_links(
        page, live_server.base_url, ".navbar a[href]:not(.dropdown-toggle)")
    seen, pages = set(), []

    def add(path):
        kind = _kind(path.split("?")[0])
        if kind not in seen and len(pages) < MAX_PAGES_PER_ROLE:
            seen.add(kind)
            pages.append(path)

    for path in menu:
        add(path)
    for path in list(pages):
        page.goto(live_server.url(path))
        for link in _same_origin_links(page, live_server.base_url, "main a[href], #main a[href], "
                                       ".container a[href]"):
            add(link)
    return pages


@pytest.fixture
def checked_page(browser, live_server):
    """checked_page(role) -> a logged-in page whose context lets the test inject axe-core past
    the site's Content-Security-Policy (the site itself still runs under it). No page may show
    a JavaScript error or a server error."""
    contexts, problems = [], BrowserProblems()

    def _login(role):
        context = browser.new_context(viewport={"width": WIDTHS[0], "height": 800},
                                      locale="sv-SE", bypass_csp=True)
        context.set_default_timeout(STEP_TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        problems.watch(page)
        page.goto(live_server.url("/login/"))
        page.fill("input[name=username]", ROLE_LOGINS[role])
        page.fill("input[name=password]", DEMO_PASSWORD)
        page.click("form[name=login] [type=submit]")
        page.wait_for_load_state()
        assert "/login" not in page.url, f"login of {role} failed: {page.url}"
        return page

    yield _login
    for context in contexts:
        context.close()
    assert not problems.items, "the browser saw errors:\n" + "\n".join(problems.items)


@pytest.mark.parametrize("role", list(ROLE_LOGINS))
def test_every_screen_of_the_role_passes_axe_at_desktop_and_phone_width(
        role, checked_page, live_server):
    assert AXE.is_file(), f"axe-core is not installed at {AXE} (run make dev-deps)"
    page = checked_page(role)
    pages = crawl(page, live_server)
    assert len(pages) > 3, f"{role}: the crawl found only {pages}"
    print(f"{role}: {len(pages)} pages: {' '.join(pages)}")
    problems = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 800})
        for path in pages:
            response = page.goto(live_server.url(path))
            assert response is not None and response.status == 200, (
                f"{role} {path}: HTTP {response.status if response else '-'}")
            page.wait_for_load_state("load")
            for violation in axe_violations(page):
                problems.append(f"{width}px {path}: {violation['id']} ({violation['impact']}: "
                                f"{violation['help']}) at {'; '.join(violation['targets'])}")
            if width < 1000:
                sideways = sideways_scroll(page)
                if sideways:
                    problems.append(f"{width}px {path}: scrolls sideways (content "
                                    f"{sideways[0]} px in a {sideways[1]} px window) at "
                                    f"{', '.join(sideways[2])}")
    if problems:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (SCREENSHOTS.parent / f"axe-{role}.txt").write_text("\n".join(problems) + "\n")
    assert not problems, (f"{role}: {len(problems)} problems on {len(pages)} pages:\n"
                          + "\n".join(problems))


# The lists' one search control in each of its states: a text that finds rows, a text that
# can find nothing (its hint shown), and a choice filter applied beside the box.
SEARCH_STATES = (
    "/registers/people/list/?q=Gustav+Gran",
    "/registers/people/list/?q=Ek",
    "/issuances/list/?q=Anna&_flt_0_status=awaiting_approval",
    "/deviations/list/?q=19800101-1231&_flt_0_type=manual",
    "/registers/kobe/list/?q=SE2321000131-E000000000007",
)


def test_the_search_control_passes_axe_in_each_state(checked_page, live_server):
    assert AXE.is_file(), f"axe-core is not installed at {AXE} (run make dev-deps)"
    page = checked_page("Servicecenter")
    problems = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 800})
        for path in SEARCH_STATES:
            response = page.goto(live_server.url(path))
            assert response is not None and response.status == 200, path
            page.wait_for_load_state("load")
            assert page.locator("form[role=search] input[name=q]").count() == 1, path
            for violation in axe_violations(page):
                problems.append(f"{width}px {path}: {violation['id']} ({violation['help']}) "
                                f"at {'; '.join(violation['targets'])}")
            sideways = sideways_scroll(page) if width < 1000 else None
            if sideways:
                problems.append(f"{width}px {path}: scrolls sideways at {sideways[2]}")
    assert "Skriv minst 3 bokstäver" in page.goto(
        live_server.url(SEARCH_STATES[1])).text()
    assert not problems, "\n".join(problems)
