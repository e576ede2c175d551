"""Fixtures for the browser journeys: a real gunicorn server on PostgreSQL and Redis with the demo
data, headless Chromium (Debian's, through Playwright), logged-in pages per user, screenshots.

A missing Chromium, PostgreSQL or Redis fails the tests with a message naming it; nothing skips.
"""

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.conftest import DEMO_PASSWORD, PG_URL, ROLE_LOGINS, _pg_admin

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = os.environ.get("RESERVKORT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
REDIS_DB = 7  # a database of its own, flushed before and after the module
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
AXE = Path(__file__).resolve().parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
VIEWPORT = {"width": 1280, "height": 800}
START_DEADLINE_SECONDS = 60
STEP_TIMEOUT_MS = 15_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _flush_redis():
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).flushdb()
    except redis.exceptions.ConnectionError as exc:  # a missing service must fail, never skip
        raise RuntimeError(f"Redis is not reachable at {REDIS_URL}: {exc}") from exc


def _wait_until_up(url, process, log_path):
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    log = Path(log_path).read_text(errors="replace")[-4000:]
    raise RuntimeError(f"gunicorn did not answer {url} within {START_DEADLINE_SECONDS} s "
                       f"(exit code {process.poll()}). Its log:\n{log}")


class LiveServer:
    """The running server: its base URL and the environment a CLI command against it needs."""

    def __init__(self, base_url, env):
        self.base_url = base_url
        self.env = env

    def url(self, path) -> str:
        return self.base_url + path

    def start_cli(self, *args) -> "CliRun":
        """Start `flask reservkort ...` against the server's database (it runs alongside)."""
        return CliRun(args, subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "app:create_app", "reservkort", *args],
            cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))


class CliRun:
    def __init__(self, args, process):
        self.args, self.process = args, process

    def output(self, timeout=60) -> str:
        """Wait for the command; its standard output. A failure shows its error output."""
        stdout, stderr = self.process.communicate(timeout=timeout)
        assert self.process.returncode == 0, (
            f"reservkort {' '.join(self.args)} failed:\n{stderr}")
        return stdout


@pytest.fixture(scope="module")
def live_server(database_template, tmp_path_factory):
    """gunicorn serving a fresh PostgreSQL database with the demo data, and Redis db 7.

    The database is a copy of the session's migrated PostgreSQL template with the demo data
    (tests/conftest.py), so the migrations and the demo load run once per session. A module
    may serve another template instead (the living demo's: `serve(living_template, ...)`)."""
    yield from serve(database_template, tmp_path_factory)


def serve(database_template, tmp_path_factory):
    """The live server on a copy of `database_template` (a PostgreSQL template database)."""
    assert not str(database_template).endswith(".db"), "mark the module postgresql_only"
    base = tmp_path_factory.mktemp("browser-server")
    instance = base / "instance"
    name = f"rk_browser_{uuid.uuid4().hex[:10]}"
    admin = _pg_admin()
    admin.cursor().execute(f'CREATE DATABASE "{name}" TEMPLATE "{database_template}"')
    _flush_redis()
    process = None
    try:
        port = _free_port()
        env = {**os.environ, "DATABASE_URL": PG_URL.format(name=name), "REDIS_URL": REDIS_URL,
               "SECRET_KEY": secrets.token_hex(16), "RESERVKORT_INSTANCE": str(instance),
               "FAB_UPDATE_PERMS": "false", "PYTHONUNBUFFERED": "1"}
        env.pop("RESERVKORT_CONFIG", None)
        log_path = base / "gunicorn.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [str(Path(sys.executable).parent / "gunicorn"), "-w", "2", "-k", "gthread",
                 "--threads", "4", "-b", f"127.0.0.1:{port}", "app:create_app()"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        base_url = f"http://127.0.0.1:{port}"
        _wait_until_up(base_url + "/login/", process, log_path)
        yield LiveServer(base_url, env)
    finally:
        if process is not None:
            _stop(process)
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
        _flush_redis()


def _stop(process):
    """Stop gunicorn (its own process group: the master and its workers). SIGINT is its quick
    shutdown: nothing is waiting for the browser's idle keep-alive connections."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium through Playwright (no browser download)."""
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        raise RuntimeError(f"Chromium is not installed at {CHROMIUM} "
                           "(apt-get install chromium, or set RESERVKORT_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def screenshots():
    """shoot(page, journey, step): a full-page PNG under test-artifacts/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def shoot(page, journey, step):
        path = SCREENSHOTS / f"{journey}-{step}.png"
        page.screenshot(path=str(path), full_page=True, type="png")
        return path

    return shoot


class BrowserProblems:
    """JavaScript errors, blocked scripts and failed requests seen on the pages."""

    def __init__(self):
        self.items = []

    def watch(self, page):
        page.on("pageerror", lambda error: self.items.append(f"{page.url}: {error}"))
        page.on("console", lambda msg: self._console(page, msg))
        page.on("response", lambda response: self._response(page, response))

    def _console(self, page, msg):
        # A failed request is reported with its address by _response.
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            self.items.append(f"{page.url}: console: {msg.text}")

    def _response(self, page, response):
        if response.status >= 400:
            self.items.append(f"{page.url}: {response.request.method} {response.url} "
                              f"answered HTTP {response.status}")


@pytest.fixture
def login_page(browser, live_server):
    """login_page(role_or_username) -> a Playwright page logged in as that user (own context).

    After the test, no page may have shown a JavaScript error or a server error."""
    contexts = []
    problems = BrowserProblems()

    def _login(who, password=DEMO_PASSWORD):
        username = ROLE_LOGINS.get(who, who)
        context = browser.new_context(viewport=VIEWPORT, locale="sv-SE",
                                      accept_downloads=True)
        context.set_default_timeout(STEP_TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        problems.watch(page)
        page.goto(live_server.url("/login/"))
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", password)
        page.click("form[name=login] [type=submit]")
        page.wait_for_load_state()
        assert "/login" not in page.url, f"login of {username} failed: {page.url}"
        return page

    yield _login
    for context in contexts:
        context.close()
    assert not problems.items, "the browser saw errors:\n" + "\n".join(problems.items)


def axe_violations(page):
    """The WCAG 2.1 AA violations axe-core finds on the page (axe injected when missing)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    return page.evaluate(
        """tags => axe.run(document, {runOnly: {type: 'tag', values: tags},
                                      resultTypes: ['violations']})
                   .then(r => r.violations.map(v => ({
                       id: v.id, impact: v.impact, help: v.help,
                       targets: v.nodes.slice(0, 5).map(n => n.target.join(' '))})))""",
        WCAG_TAGS)


def sideways_scroll(page):
    """None, or [content width, window width, the outermost elements that stick out]."""
    return page.evaluate("""() => { const s = document.scrollingElement;
        if (s.scrollWidth <= s.clientWidth) { return null; }
        const out = [];
        for (const e of document.querySelectorAll('body *')) {
            const r = e.getBoundingClientRect();
            if (r.width > 0 && r.right > s.clientWidth + 1 && out.length < 3
                    && !out.some(o => o.contains(e))) { out.push(e); }
        }
        return [s.scrollWidth, s.clientWidth, out.map(e => e.tagName.toLowerCase()
            + (e.id ? '#' + e.id : '') + (e.className ? '.' + String(e.className).trim()
            .split(/\\s+/).join('.') : ''))]; }""")


def open_from_menu(page, href):
    """Open a screen the way a user does: the menu category, then the item (found by its
    address, so a reworded label does not break the journey)."""
    item = page.locator(f".navbar .dropdown-menu a[href='{href}']")
    category = page.locator(".navbar li.dropdown",
                            has=page.locator(f".dropdown-menu a[href='{href}']"))
    category.locator(":scope > a.dropdown-toggle").click()
    item.click()
    page.wait_for_load_state()
