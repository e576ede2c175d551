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
from flask_appbuilder.security.sqla.models import User
from sqlalchemy import event, inspect, literal, select, true, union_all

from app.access.persons import (
    MASK,
    PERSON_FIELDS,
    PROTECTED_LOGINS_KEY,
    _protected_login_ids,
    current_user_cleared,
    format_personal_number,
    hidden,
    login_hidden,
    mask_dict,
    mask_login_dict,
    retired_logins_of_protected,
    shown_login,
)
from app.extensions import db
from models import (
    AccountLink,
    AuditEvent,
    Deviation,
    DeviationNote,
    Issuance,
    KobeRecord,
    Person,
    ProtectedGeneration,
    RetiredLogin,
)

# Shorter strings would mask ordinary words.
MIN_LENGTH = 4
_CACHE_KEY = "reservkort.access.protected_identities"
_built = None  # (the protected generation's token, the Identities read under it)


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


def _name_words(name) -> set:
    """The words of a name long enough to name someone on their own ("Zebulon", not "Ek")."""
    return {word for word in re.findall(r"\w+", name or "") if len(word) >= MIN_LENGTH}


_WORD = re.compile(r"\w+")
# Letters that the pattern (re.IGNORECASE, simple case folding) takes as equal though their
# lower() differ, lower case -> one letter of their class; İ, whose lower() is two letters,
# is taken as i first. tests/test_access_records.py checks the table against Python's own.
_FOLDS = str.maketrans(
    "\u0131\u017f\u03b9\u03bc\u03c3\u03d0\u03d1\u03d5\u03d6\u03f0\u03f1\u03f5\u1c80"
    "\u1c81\u1c82\u1c83\u1c84\u1c85\u1c86\u1c87\u1e9b\u1fbe\u1fd3\u1fe3\ua64b\ufb06",
    "is\u0345\xb5\u03c2\u03b2\u03b8\u03c6\u03c0\u03ba\u03c1\u03b5\u0432\u0434\u043e"
    "\u0441\u0442\u0442\u044a\u0463\u1e61\u0345\u0390\u03b0\u1c88\ufb05")


def folded(text: str) -> str:
    """`text` in one case, as the pattern compares letters."""
    return text.replace("\u0130", "i").lower().translate(_FOLDS)


def _first_words(strings):
    """The first word (folded) of each string; None when a string does not start with a
    word (then every text is matched against the pattern)."""
    words = set()
    for string in strings:
        found = _WORD.match(folded(string))
        if found is None:
            return None
        words.add(found.group(0))
    return words


class Identities:
    """The protected people's identifying strings (name and each word of it, personal identity
    number in both forms, e-mail address, their login's username), and one pattern matching
    any of them as a whole word, case-insensitive."""

    def __init__(self, rows):
        self.ids, self.emails = set(), {}
        # Each string (lower case) -> the protected people it identifies (names are shared).
        self.owners = {}
        everyone = set()
        for person_id, name, number, email, username in rows:
            self.ids.add(person_id)
            if email:
                self.emails[email.strip().lower()] = person_id
            mine = {s for s in (name, number, format_personal_number(number), email, username)
                    if s and len(s) >= MIN_LENGTH} | _name_words(name)
            mine |= {html.escape(s) for s in mine}
            everyone |= mine
            for string in mine:
                self.owners.setdefault(string.lower(), set()).add(person_id)
        # Whole words only: "Kanarieqvist" is masked, "Ekonomi" is not masked for an "Ek".
        self.pattern = (re.compile(rf"(?<!\w)(?:{_pattern(everyone).pattern})(?!\w)",
                                   re.IGNORECASE) if everyone else None)
        self.first_words = _first_words(everyone)

    def may_name(self, text) -> bool:
        """Whether `text` can hold a protected person's string: each string, matched as a
        whole word, starts with a whole word of the text (its first word), and a set look-up
        of the text's words is far cheaper than the pattern (most free text names nobody)."""
        if self.first_words is None:
            return True
        return not self.first_words.isdisjoint(_WORD.findall(folded(text)))

    def redact(self, text, pattern=None, mask=None):
        pattern = self.pattern if pattern is None else pattern
        if not isinstance(text, str) or pattern is None or not self.may_name(text):
            return text
        return pattern.sub(str(MASK) if mask is None else mask, text)

    def redact_all_but(self, text, person_id, mask):
        """Every protected person's strings masked except those of `person_id` alone (one
        pass of the combined pattern, whatever the number of protected people)."""
        if not isinstance(text, str) or self.pattern is None or not self.may_name(text):
            return text

        def shown(match):
            found = match.group(0)
            return found if self.owners.get(found.lower()) == {person_id} else mask

        return self.pattern.sub(shown, text)


def _protected_since(known_token):
    """(the protected generation's token, the protected people's rows or None), in one
    statement: the rows (id, name, personal number, e-mail, login username) are joined only
    when the token is not `known_token`, so a process that knows them reads one short row.
    The token's test stands in the people's own WHERE with no column of theirs, so the
    database decides it once before reading any of them (PostgreSQL: a one-time filter)."""
    moved = (select(ProtectedGeneration.token).scalar_subquery()
             .is_distinct_from(literal(known_token or "")))
    people = union_all(
        select(Person.id, Person.name, Person.personal_number, Person.email,
               User.username.label("username"), User.id.label("user_id"))
        .outerjoin(AccountLink, AccountLink.person_id == Person.id)
        .outerjoin(User, User.id == AccountLink.user_id)
        .where(Person.protected_identity.is_(True), moved),
        # The usernames of their deleted logins too (what those wrote stays masked).
        retired_logins_of_protected(Person.id, Person.name, Person.personal_number,
                                    Person.email, RetiredLogin.username, RetiredLogin.user_id)
        .where(moved),
    ).subquery()
    found = db.session.execute(
        select(ProtectedGeneration.token, people.c.id, people.c.name, people.c.personal_number,
               people.c.email, people.c.username)
        .outerjoin(people, true())
        .order_by(people.c.id, people.c.user_id)).all()
    if not found:  # a database without the token row: read every time
        return None, _rows(db.session.execute(select(
            people.c.id, people.c.name, people.c.personal_number, people.c.email,
            people.c.username).order_by(people.c.id, people.c.user_id)).all())
    token = found[0][0]
    if token == known_token:
        return token, None
    return token, _rows(row[1:] for row in found if row[1] is not None)


def _rows(rows) -> tuple:
    return tuple(tuple(row) for row in rows)


_TOKEN_KEY = "reservkort.access.protected_token"


def protected_token():
    """The protected generation's token as a scalar subquery: read with the request's login
    (app.security), so that a request whose process knows the protected people reads nothing
    more to mask."""
    return select(ProtectedGeneration.token).scalar_subquery()


def remember_protected_token(token) -> None:
    if has_request_context() and token is not None:
        request.environ[_TOKEN_KEY] = token


def protected_identities() -> Identities:
    """Every protected person's strings, checked once per request (in a job at every call, and
    again after a flush that changed who is protected or what identifies them). They are kept
    in the process while the protected generation's token (changed by the database's own
    triggers, migration 0011) is the one they were read under: a national register's
    protected people cost more to read and build into a pattern than a page costs. The token
    read with the request's login, when it is the one they were read under, is enough."""
    global _built
    cache = request.environ if has_request_context() else {}
    if _CACHE_KEY not in cache:
        built = _built
        if built is not None and cache.get(_TOKEN_KEY) == built[0]:
            cache[_CACHE_KEY] = built[1]
            return built[1]
        token, rows = _protected_since(built[0] if built else None)
        if rows is not None or built is None:
            built = _built = (token, Identities(rows or ()))
        cache[_CACHE_KEY] = built[1]
    return cache[_CACHE_KEY]


# What a change of must make the request read the protected people again.
_IDENTIFYING = {Person: ("protected_identity", *PERSON_FIELDS), User: ("username",),
                AccountLink: ("person_id", "user_id")}


def _changes_who_is_protected(session) -> bool:
    for obj in (*session.new, *session.deleted):
        if type(obj) in _IDENTIFYING:
            return True
    for obj in session.dirty:
        fields = _IDENTIFYING.get(type(obj))
        if fields and any(inspect(obj).attrs[field].history.has_changes() for field in fields):
            return True
    return False


def forget_protected() -> None:
    """Read the protected people (and their logins) again at the next question."""
    if has_request_context():
        request.environ.pop(_CACHE_KEY, None)
        request.environ.pop(_TOKEN_KEY, None)
        request.environ.pop(PROTECTED_LOGINS_KEY, None)


@event.listens_for(db.session, "before_flush")
def _forget_if_protection_changes(session, _context, _instances):
    # Before the flush, while the changes' history is still there; the next read (after it)
    # sees them.
    if has_request_context() and _changes_who_is_protected(session):
        forget_protected()


@event.listens_for(db.session, "after_soft_rollback")
def _forget_after_rollback(session, _previous):
    forget_protected()


def redact_value(value, identities=None):
    """A JSON-like value (dict, list, string) with every protected person's strings masked."""
    identities = identities or protected_identities()
    if isinstance(value, dict):
        return {key: redact_value(item, identities) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(item, identities) for item in value]
    return identities.redact(value)


# --- free text and the logins named in rows --------------------------------------------------

# Text written by people, which may name anyone (a protected person too): shown with every
# protected person's strings masked to a reader without clearance, on every read path.
FREE_TEXT = {
    Deviation: ("description",),
    DeviationNote: ("text",),
    Issuance: ("assignment", "rejection_reason", "block_reason", "lost_note", "address",
               "justification"),
    KobeRecord: ("updated_by",),  # a username
}
# Columns that name a login (its username), each with the column of the login's id.
LOGIN_COLUMNS = {AuditEvent: {"actor": "actor_user_id"},
                 DeviationNote: {"author_name": "author_user_id"}}


def free_text(value, cleared=None):
    """Free text as the reader may see it: every protected person's strings masked (names and
    each word of them, username, personal identity number, e-mail address) unless cleared."""
    if not isinstance(value, str) or not value or (
            current_user_cleared() if cleared is None else cleared):
        return value
    return protected_identities().redact(value)


def shown_column(owner, field, value, cleared=None):
    """The value of `field` of the row `owner` as the reader may see it: a login named by its
    username masked (app.access.persons.shown_login), free text redacted; anything else as
    it is."""
    kind = type(owner)
    login_column = LOGIN_COLUMNS.get(kind, {}).get(field)
    if login_column is not None:
        value = shown_login(getattr(owner, login_column, None), value, cleared)
    if field in FREE_TEXT.get(kind, ()):
        value = free_text(value, cleared)
    return value


def shown_row_dict(owner, data: dict, cleared=None) -> dict:
    """Mask, in place, a serialised row (any subset of its columns), as `shown_column` says."""
    if type(owner) in FREE_TEXT or type(owner) in LOGIN_COLUMNS:
        for key in data:
            data[key] = shown_column(owner, key, data[key], cleared)
    return data


def masked_dump(item, data: dict, cleared=None) -> dict:
    """A serialised item (e.g. a schema's dump of a Person) as the reader may see it."""
    if isinstance(item, Person) and hidden(item, cleared):
        return mask_dict(data)
    if isinstance(item, User) and login_hidden(item, cleared):
        mask_login_dict(data)
    return shown_row_dict(item, data, cleared)


class ShownRow:
    """A row for a template, its free text and logins as the reader may see them."""

    def __init__(self, row):
        self._row = row

    def __getattr__(self, key):
        return shown_column(self._row, key, getattr(self._row, key))


def shown_rows(rows):
    return [ShownRow(row) for row in rows]


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
        value = mask_login_dict(dict(value))
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
