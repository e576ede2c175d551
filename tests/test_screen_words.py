"""No internal value reaches a person: every role's screens (its menu and the pages one click
below) show statuses, reasons, channels, types and audit actions in words, never True/False/
None, never a time with seconds or microseconds, never "(fält: issuance_id)"; and the words come
from one table (app/labels.py)."""

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from flask_babel import force_locale

from app import display, labels
from models import (
    CARD_STATUSES,
    CHANNELS,
    DEVIATION_STATUSES,
    DEVIATION_TYPES,
    ISSUANCE_STATUSES,
    OUTBOX_STATUSES,
    REASONS,
)
from tests.conftest import ROLE_LOGINS

CODES = set(CARD_STATUSES + CHANNELS + DEVIATION_STATUSES + DEVIATION_TYPES
            + ISSUANCE_STATUSES + OUTBOX_STATUSES + REASONS) | set(labels.ACTION)
# A code with an underscore or a dot is never a word: it may not appear anywhere in the text.
NEVER_WORDS = {code for code in CODES if "_" in code or "." in code}
SECONDS = re.compile(r"\b\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d")
RAW_VALUES = re.compile(r"(?<![\w-])(True|False|None)(?![\w-])")
NOT_FOLLOWED = re.compile(r"^/back$|/(logout|lang|login)/|/delete|/action|/export|\.(pdf|csv|xlsx)$"
                          r"|/download|/api/|/_openapi|/swagger", re.IGNORECASE)
MAX_PAGES = 60


class _Page(HTMLParser):
    """The visible text, each table cell's text, and the links of the page's main content."""

    def __init__(self):
        super().__init__()
        self.text, self.cells, self.links, self.menu_links = [], [], [], []
        self._skip = 0
        self._cell = None
        self._in_nav = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("script", "style", "template"):
            self._skip += 1
        if tag == "nav":
            self._in_nav += 1
        if tag in ("td", "th", "dd"):
            self._cell = []
        if tag == "a" and attrs.get("href"):
            (self.menu_links if self._in_nav else self.links).append(attrs["href"])

    def handle_endtag(self, tag):
        if tag in ("script", "style", "template"):
            self._skip -= 1
        if tag == "nav":
            self._in_nav -= 1
        if tag in ("td", "th", "dd") and self._cell is not None:
            self.cells.append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._skip:
            return
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def _parse(html) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def _local(href, base):
    url = urljoin(base, href)
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost") or href.startswith(("#", "mailto:", "javascript:")):
        return None
    if NOT_FOLLOWED.search(parts.path):
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _kind(path):
    return re.sub(r"/\d+(?=/|$)", "/N", path.split("?")[0].rstrip("/") or "/")


def problems_on(html) -> list[str]:
    page = _parse(html)
    text = " ".join(" ".join(page.text).split())
    found = []
    for code in sorted(NEVER_WORDS):
        if re.search(rf"(?<![\w.]){re.escape(code)}(?![\w.])", text):
            found.append(f"raw code {code!r}")
    for cell in page.cells:
        if cell in CODES:
            found.append(f"raw code {cell!r} in a table cell")
    for match in sorted(set(RAW_VALUES.findall(text))):
        found.append(f"raw value {match!r}")
    for match in sorted(set(SECONDS.findall(text))):
        found.append(f"time with seconds {match!r}")
    if "(fält:" in text or "(field:" in text:
        found.append("a field code in brackets")
    return found


def crawl(client):
    """The role's menu pages and the pages one click below them, one address per kind."""
    start = client.get("/")
    assert start.status_code == 200
    queue = ["/"] + [p for p in (_local(h, "http://localhost/")
                                 for h in _parse(start.get_data(as_text=True)).menu_links) if p]
    seen, pages = set(), []

    def add(path):
        if _kind(path) not in seen and len(pages) < MAX_PAGES:
            seen.add(_kind(path))
            pages.append(path)

    for path in queue:
        add(path)
    for path in list(pages):
        response = client.get(path, follow_redirects=True)
        if response.status_code == 200 and response.mimetype == "text/html":
            for href in _parse(response.get_data(as_text=True)).links:
                local = _local(href, "http://localhost" + path)
                if local:
                    add(local)
    return pages


@pytest.mark.parametrize("role", list(ROLE_LOGINS))
def test_no_internal_value_on_any_screen_of_the_role(login, role):
    client = login(role)
    pages = crawl(client)
    assert len(pages) > 3, pages
    found = []
    for path in pages:
        response = client.get(path, follow_redirects=True)
        assert response.status_code == 200, f"{path}: HTTP {response.status_code}"
        if response.mimetype != "text/html":
            continue
        found += [f"{path}: {problem}" for problem in problems_on(response.get_data(as_text=True))]
    assert not found, f"{role}: internal values on the screens:\n" + "\n".join(found)


def test_the_label_table_names_every_code_of_the_models(app):
    for kind, codes in (("issuance_status", ISSUANCE_STATUSES), ("card_status", CARD_STATUSES),
                        ("deviation_status", DEVIATION_STATUSES),
                        ("outbox_status", OUTBOX_STATUSES), ("reason", REASONS),
                        ("channel", CHANNELS), ("deviation_type", DEVIATION_TYPES)):
        for code in codes:
            assert labels.label(kind, code) != code, f"{kind} {code} has no words"
    assert labels.cell(None) == ""
    assert labels.cell(True) == "Ja" and labels.cell(False) == "Nej"
    assert labels.cell("awaiting_approval", "status") == "Väntar på godkännande"
    assert labels.cell("user.create", "action") == "Inloggning skapad"


class CountedWords:
    """A table's words that count how often they are translated."""

    def __init__(self, words, translations):
        self.words, self.translations = words, translations

    def __str__(self):
        self.translations.append(self.words)
        return str(self.words)


def test_a_code_is_translated_once_per_language_not_in_every_cell(app, monkeypatch):
    translations = []
    monkeypatch.setattr(labels, "_WORDS", {})
    monkeypatch.setitem(labels._KINDS, "deviation_type", {
        code: CountedWords(words, translations) for code, words in labels.DEVIATION_TYPE.items()})
    with app.test_request_context("/"):
        swedish = [labels.cell("manual", "type") for _ in range(50)]
        with force_locale("en"):
            english = [labels.label("deviation_type", "manual") for _ in range(50)]
        again = labels.label("deviation_type", "manual")
    assert swedish == ["Manuell"] * 50 and english == ["Manual"] * 50 and again == "Manuell"
    # each of the table's codes once in Swedish and once in English, whatever the cells
    assert len(translations) == 2 * len(labels.DEVIATION_TYPE)
    assert labels.label("deviation_type", "no_such_code") == "no_such_code"


def test_the_screens_status_channel_and_action_words_come_from_the_table(app):
    with app.test_request_context("/"):
        assert display.status_label("returned") == labels.label("status", "returned") != "returned"
        assert display.channel_label("registered_mail") == "Rekommenderad post"
        assert display.action_label("user.create") == "Inloggning skapad"
        # nothing is a dash, an unknown code is shown as it is
        assert display.status_label(None) == display.channel_label("") == display.DASH
        assert display.status_label("no_such_code") == "no_such_code"


def test_no_copy_of_the_status_or_reason_words_outside_the_table():
    """The words for a status or a reason are written in app/labels.py and nowhere else."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    copies = []
    for source in list((root / "app").rglob("*.py")) + list((root / "views").rglob("*.py")):
        if source.name == "labels.py":
            continue
        text = source.read_text()
        for words in ('_l("Awaiting approval")', '_l("Stolen, lost, broken or damaged")',
                      '"Stulet, förlorat, sönder, skadat"', '_l("Receipt received")'):
            if words in text:
                copies.append(f"{source.relative_to(root)}: {words}")
    assert not copies, "label copies outside app/labels.py:\n" + "\n".join(copies)
