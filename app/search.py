"""One search box for the lists of people and of rows about people (issuances, deviations, the
Kobe register): a name, an HSA-id, a personal identity number or a card serial, typed in one
field. The text is read once (`read`), and each list's condition is built from what it can be;
who may be found is the access policy's (`access.findable_people`): for a login without
clearance a protected person is never found, by any of these, and no row about them is either.

Every match is one an index serves at national scale:
- HSA-id, personal identity number (any usual format, normalised to 12 digits) and card serial
  are exact matches on unique columns;
- a name matches when each typed word (one at least of MIN_NAME_CHARS letters) occurs in it:
  `name ILIKE '%word%'`, served on PostgreSQL by the trigram index of migration 0008_search;
  on SQLite (the embedded database) the same condition is a scan of a small register.

The same reading explains a name typed where an HSA-id is expected (`hsa_id_or_name`): the
people it matches, among those the login may see, are found or named in the message.
"""

import re
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, false, or_, select

from app import access, validation
from app.extensions import db
from app.validation import FieldError
from models import Deviation, Issuance, KobeRecord, Person, ReserveCard

MIN_NAME_CHARS = 3
MAX_WORDS = 5
MAX_TEXT = 200
NAMED_IN_MESSAGE = 5
HSA_ID_EXAMPLE = "SE2321000131-B123"
_DIGITS_AND_SEPARATORS = re.compile(r"^[0-9\s+-]+$")


@dataclass(frozen=True)
class Terms:
    """What a typed text can be: each is None (or empty) when the text cannot be one."""

    text: str
    hsa_id: str | None = None
    personal_number: str | None = None
    serial: str | None = None
    name_words: tuple[str, ...] = ()
    # Letters typed, but no word long enough to search names with an index.
    name_too_short: bool = False

    @property
    def searchable(self) -> bool:
        return bool(self.hsa_id or self.personal_number or self.serial or self.name_words)


def _try(check, value):
    try:
        return check(value)
    except FieldError:
        return None


def read(text) -> Terms:
    """The typed text as the things it may be."""
    text = " ".join(str(text or "").split())[:MAX_TEXT]
    if not text:
        return Terms(text)
    hsa_id = _try(validation.hsa_id, text)
    if hsa_id:
        return Terms(text, hsa_id=hsa_id)
    if _DIGITS_AND_SEPARATORS.match(text):
        compact = re.sub(r"\s", "", text)
        return Terms(text, personal_number=_try(validation.personal_number, compact),
                     serial=_try(validation.card_serial, compact))
    words = tuple(word for word in text.split(" ") if word)[:MAX_WORDS]
    if not any(sum(char.isalpha() for char in word) >= MIN_NAME_CHARS for word in words):
        return Terms(text, name_too_short=True)
    return Terms(text, name_words=words)


def _like(word: str) -> str:
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _name_condition(words):
    return and_(*[Person.name.ilike(_like(word), escape="\\") for word in words])


def _identifies(terms: Terms):
    """The condition on Person: the text names this person (whoever may see them)."""
    found = []
    if terms.hsa_id:
        found.append(Person.hsa_id == terms.hsa_id)
    if terms.personal_number:
        found.append(Person.personal_number == terms.personal_number)
    if terms.name_words:
        found.append(_name_condition(terms.name_words))
    return or_(*found) if found else None


def people_condition(terms: Terms):
    """Person rows the text finds for the login."""
    named = _identifies(terms)
    if named is None:
        return false()
    return and_(named, access.findable_people())


def _people_ids(terms: Terms):
    return select(Person.id).where(people_condition(terms))


def _about_findable(person_column):
    """A row about a person is found only when the person may be (no row names a protected
    person to a login without clearance, not even by its card serial)."""
    if access.current_user_cleared():
        return None
    return or_(person_column.is_(None),
               person_column.not_in(select(Person.id).where(Person.protected_identity.is_(True))))


def _with_person(person_column, terms, by_serial=None):
    found = []
    if _identifies(terms) is not None:
        found.append(person_column.in_(_people_ids(terms)))
    if terms.serial and by_serial is not None:
        found.append(by_serial(terms.serial))
    if not found:
        return false()
    guard = _about_findable(person_column)
    return and_(or_(*found), guard) if guard is not None else or_(*found)


def issuance_condition(terms: Terms):
    return _with_person(Issuance.recipient_id, terms, lambda serial: Issuance.card_id.in_(
        select(ReserveCard.id).where(ReserveCard.serial == serial)))


def deviation_condition(terms: Terms):
    return _with_person(Deviation.person_id, terms,
                        lambda serial: Deviation.card_serial == serial)


def kobe_condition(terms: Terms):
    return _with_person(KobeRecord.person_id, terms)


CONDITIONS = {
    Person: people_condition,
    Issuance: issuance_condition,
    Deviation: deviation_condition,
    KobeRecord: kobe_condition,
}
SEARCHABLE = tuple(CONDITIONS)


def condition(model, text):
    """The condition on `model`'s rows that the search box's `text` finds for the login."""
    return CONDITIONS[model](read(text))


def hint(text) -> str | None:
    """What to type instead, when the text can find nothing by itself."""
    terms = read(text)
    if not terms.text or terms.searchable:
        return None
    if terms.name_too_short:
        return str(_l("Type at least %(count)s letters of a name, or a whole HSA-id, personal "
                      "identity number or card serial.", count=MIN_NAME_CHARS))
    return str(_l("Not a name, HSA-id, personal identity number or card serial: a personal "
                  "identity number is YYYYMMDD-NNNN or YYMMDD-NNNN, a card serial 6 to 20 "
                  "digits."))


# --- a name typed where an HSA-id is expected ----------------------------------------------

def people_named(text, limit=NAMED_IN_MESSAGE + 1) -> list[Person]:
    """The people the login may see whose name holds each typed word, by name."""
    terms = read(text)
    if not terms.name_words:
        return []
    query = (select(Person).where(_name_condition(terms.name_words), access.findable_people())
             .order_by(Person.name, Person.hsa_id).limit(limit))
    return list(db.session.execute(query).unique().scalars())


def _named(people) -> str:
    return ", ".join(f"{access.display_name(person)} ({person.hsa_id})"
                     for person in people[:NAMED_IN_MESSAGE])


def looks_like_a_name(text) -> bool:
    """A name typed where an HSA-id (or a personal identity number) is expected: a word of at
    least MIN_NAME_CHARS letters (a mistyped id like "E0001" keeps its format message)."""
    return bool(read(text).name_words)


def hsa_id_or_name(text, field: str, accept_unique=True) -> tuple[str, Person | None]:
    """(HSA-id, None) for an HSA-id; (their HSA-id, person) for a name that matches exactly one
    person the login may see (with `accept_unique`). Anything else is a FieldError at `field`
    saying what to type and which people the name matches, by name and HSA-id (never a
    protected one to a login without clearance)."""
    terms = read(text)
    if terms.hsa_id:
        return terms.hsa_id, None
    people = people_named(text) if terms.name_words else []
    if len(people) == 1 and accept_unique:
        return people[0].hsa_id, people[0]
    example = {"example": HSA_ID_EXAMPLE, "name": terms.text}
    if not terms.name_words:
        raise FieldError(field, _l("Give an HSA-id, e.g. %(example)s.") % example)
    if not people:
        raise FieldError(field, _l("Give an HSA-id, e.g. %(example)s; no person named "
                                   "\u201c%(name)s\u201d was found.") % example)
    if len(people) == 1:
        raise FieldError(field, _l("Give an HSA-id, e.g. %(example)s; the one person named "
                                   "\u201c%(name)s\u201d is %(people)s.")
                         % {**example, "people": _named(people)})
    more = len(people) > NAMED_IN_MESSAGE
    message = (_l("Give an HSA-id, e.g. %(example)s; more than %(count)s people are named "
                  "\u201c%(name)s\u201d, among them: %(people)s.") if more else
               _l("Give an HSA-id, e.g. %(example)s; found %(count)s people named "
                  "\u201c%(name)s\u201d: %(people)s."))
    raise FieldError(field, message % {**example, "count": min(len(people), NAMED_IN_MESSAGE),
                                       "people": _named(people)})
