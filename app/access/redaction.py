"""Text that was written down while a person was not yet protected, or that names a person in
free form: audit rows (before/after JSON), outbox rows and the e-mails sent from them.

Such text cannot be re-rendered, so it is redacted: every occurrence of a protected person's
name, personal identity number (both forms) and e-mail address is replaced by the mask, and a
person row's own fields are masked by key. Protected people are few, so every protected
person is considered (no guessing which ones a row refers to), which also catches a person
who became protected after the row was written.
"""

import html
import re

from flask import has_request_context, request
from sqlalchemy import select

from app.access.persons import (
    MASK,
    PERSON_FIELDS,
    USER_FIELDS,
    _protected_login_ids,
    current_user_cleared,
    format_personal_number,
)
from app.extensions import db
from models import Person

# Shorter strings would mask ordinary words.
MIN_LENGTH = 4
_CACHE_KEY = "reservkort.access.protected_identities"
_built = None  # (the rows read, their Identities) of the last read


def _pattern(strings):
    """One case-insensitive pattern matching any of the strings, the longest at a place.
    Written as a trie (shared beginnings once), so a text is scanned in one pass whatever the
    number of strings: a plain alternation tries every string at every character."""
    trie = {}
    for string in strings:
        node = trie
        for char in string.lower():
            node = node.setdefault(char, {})
        node[""] = {}
    return re.compile(_trie_pattern(trie), re.IGNORECASE)


def _trie_pattern(node) -> str:
    branches = [re.escape(char) + _trie_pattern(child)
                for char, child in sorted(node.items()) if char]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    # A string may end here: the longer ones are tried first (greedy), as before.
    return f"(?:{body})?" if "" in node else body


class Identities:
    """The protected people's identifying strings, and a pattern matching any of them."""

    def __init__(self, rows):
        self.ids, self.emails = set(), {}
        # Each string (lower case) -> the protected people it identifies (names are shared).
        self.owners = {}
        everyone = set()
        for person_id, name, number, email in rows:
            self.ids.add(person_id)
            if email:
                self.emails[email.strip().lower()] = person_id
            mine = {s for s in (name, number, format_personal_number(number), email)
                    if s and len(s) >= MIN_LENGTH}
            mine |= {html.escape(s) for s in mine}
            everyone |= mine
            for string in mine:
                self.owners.setdefault(string.lower(), set()).add(person_id)
        self.pattern = _pattern(everyone) if everyone else None

    def redact(self, text, pattern=None, mask=None):
        pattern = self.pattern if pattern is None else pattern
        if not isinstance(text, str) or pattern is None:
            return text
        return pattern.sub(str(MASK) if mask is None else mask, text)

    def redact_all_but(self, text, person_id, mask):
        """Every protected person's strings masked except those of `person_id` alone (one
        pass of the combined pattern, whatever the number of protected people)."""
        if not isinstance(text, str) or self.pattern is None:
            return text

        def shown(match):
            found = match.group(0)
            return found if self.owners.get(found.lower()) == {person_id} else mask

        return self.pattern.sub(shown, text)


def protected_identities() -> Identities:
    """Every protected person's strings, read once per request (fresh in a job)."""
    global _built
    cache = request.environ if has_request_context() else {}
    if _CACHE_KEY not in cache:
        rows = tuple(tuple(row) for row in db.session.execute(
            select(Person.id, Person.name, Person.personal_number, Person.email)
            .where(Person.protected_identity.is_(True))).all())
        # The pattern of a national register's protected people takes a while to build:
        # built again only when they changed since the last read.
        built = _built
        if built is None or built[0] != rows:
            built = _built = (rows, Identities(rows))
        cache[_CACHE_KEY] = built[1]
    return cache[_CACHE_KEY]


def redact_value(value, identities=None):
    """A JSON-like value (dict, list, string) with every protected person's strings masked."""
    identities = identities or protected_identities()
    if isinstance(value, dict):
        return {key: redact_value(item, identities) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(item, identities) for item in value]
    return identities.redact(value)


# --- the audit log -------------------------------------------------------------------------

def audit_value(event, value, cleared=None):
    """An audit row's before/after as the reader may see it: a protected person's own row has
    its identifying fields masked by key, and every protected person's strings anywhere are
    masked."""
    if (current_user_cleared() if cleared is None else cleared) or not value:
        return value
    identities = protected_identities()
    if event.entity == "person" and event.entity_id in identities.ids and isinstance(value,
                                                                                      dict):
        value = {key: (str(MASK) if key == "name" else None) if key in PERSON_FIELDS else item
                 for key, item in value.items()}
    elif event.entity == "user" and isinstance(value, dict) and _login_of_protected(
            event, value, identities):
        # FAB's user changes (app.security_audit): a protected person's login carries the
        # person's first and last name and e-mail, each on its own (not caught as the name).
        value = {key: (None if key == "email" else str(MASK)) if key in USER_FIELDS else item
                 for key, item in value.items()}
    return redact_value(value, identities)


def _login_of_protected(event, value, identities) -> bool:
    """Whether an audit row about a login is about a protected person's login: linked to
    one now, or written with a protected person's e-mail address."""
    if event.entity_id in _protected_login_ids():
        return True
    email = value.get("email")
    return isinstance(email, str) and email.strip().lower() in identities.emails


# --- the outbox and e-mail -----------------------------------------------------------------

OUTBOX_FIELDS = ("to_addrs", "subject", "body_text", "body_html")


def outbox_value(field, value, cleared=None):
    """An outbox row's text field as a reader (not the addressee) may see it."""
    if field not in OUTBOX_FIELDS or (current_user_cleared() if cleared is None else cleared):
        return value
    return protected_identities().redact(value)


class OutboxShown:
    """An outbox row for a template, its text fields as the reader may see them."""

    def __init__(self, message):
        self._message = message

    def __getattr__(self, key):
        return outbox_value(key, getattr(self._message, key))


def shown_outbox(messages):
    return [OutboxShown(message) for message in messages]


def mail_texts(to_addrs, *texts, identities=None):
    """An e-mail's subject and bodies as they may go to `to_addrs`: a protected person's
    strings are masked unless the e-mail goes to that person alone. Called when the e-mail is
    queued and again when it is sent (the person may have become protected in between).
    `identities`: the protected people read once for many e-mails (outside a request they are
    otherwise read again for each)."""
    identities = identities or protected_identities()
    if identities.pattern is None:
        return texts
    addresses = {a.strip().lower() for a in str(to_addrs or "").split(",") if a.strip()}
    owners = {identities.emails.get(a) for a in addresses}
    only_person = owners.pop() if len(owners) == 1 else None
    mask = str(MASK)
    return tuple(identities.redact_all_but(text, only_person, mask) for text in texts)
