"""The Swedish catalog: the parts agree with each other, and every message the code and the
templates use has a Swedish translation."""

from collections import defaultdict
from pathlib import Path

from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
PARTS = ROOT / "app" / "translations" / "sv" / "parts"
SOURCE_DIRS = ("app", "views")
METHODS = [
    ("**/translations/**", "ignore"),
    ("**.py", "python"),
    ("**/templates/**.html", "jinja2"),
    ("**/templates/**.txt", "jinja2"),
]
KEYWORDS = {**DEFAULT_KEYWORDS, "lazy_gettext": None, "_l": None}
# silent=false: a template Jinja cannot parse fails the test instead of hiding its messages.
OPTIONS = {"**/templates/**": {"silent": "false", "extensions": "jinja2.ext.do"}}


def _msgid(message) -> str:
    return message.id if isinstance(message.id, str) else message.id[0]


def _translations() -> dict:
    """msgid -> {translation: [part file names]}, over every catalog part."""
    found = defaultdict(lambda: defaultdict(list))
    for part in sorted(PARTS.glob("*.po")):
        with part.open("rb") as handle:
            for message in read_po(handle, locale="sv"):
                if message.id and message.string:
                    string = message.string if isinstance(message.string, str) \
                        else tuple(message.string)
                    found[_msgid(message)][string].append(part.name)
    return found


def _used_messages() -> dict:
    """msgid -> the first place (file:line) the code or a template uses it."""
    used = {}
    for directory in SOURCE_DIRS:
        for filename, lineno, message, _comments, _context in extract_from_dir(
                ROOT / directory, METHODS, options_map=OPTIONS, keywords=KEYWORDS):
            msgid = message if isinstance(message, str) else message[0]
            if msgid:
                used.setdefault(msgid, f"{directory}/{filename}:{lineno}")
    return used


def test_no_message_has_two_different_translations():
    conflicts = {msgid: dict(strings) for msgid, strings in _translations().items()
                 if len(strings) > 1}
    assert not conflicts, "translated differently in different parts:\n" + "\n".join(
        f"  {msgid!r}: {strings}" for msgid, strings in sorted(conflicts.items()))


def test_the_extraction_finds_code_and_template_messages():
    used = _used_messages()
    assert "Awaiting approval" in used  # lazy_gettext as _l in views/home.py
    assert "Register receipt" in used  # _() in a template
    assert len(used) > 300


def test_every_used_message_has_a_swedish_translation():
    translated = _translations()
    missing = {msgid: where for msgid, where in _used_messages().items()
               if msgid not in translated}
    assert not missing, f"{len(missing)} messages without a Swedish translation:\n" + "\n".join(
        f"  {msgid!r}  ({where})" for msgid, where in sorted(missing.items()))
