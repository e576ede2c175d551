"""How a person is shown to a login, and which writes on a person need clearance.

Protected identity (skyddad identitet): only a login cleared for it sees such a person's name,
personal identity number and e-mail address; every other login sees the HSA-id, the flag and
the mask ("Skyddad identitet"). Only a cleared login may change a protected person (which
includes lifting the protection).
"""

from flask import g, has_app_context, has_request_context, request
from flask_appbuilder.security.sqla.models import User
from flask_babel import lazy_gettext as _l
from sqlalchemy import event, select, union_all
from sqlalchemy.exc import SQLAlchemyError

from app.errors import refuse
from app.extensions import db
from models import AccountLink, Person, RetiredLogin

# The identifying columns of a login account (FAB's user): its names and e-mail are copied from
# its person, and its username is often made of the person's name.
USER_FIELDS = ("username", "first_name", "last_name", "email")

MASK = _l("Protected identity")
# The columns of a person that identify them; everything else (HSA-id, unit) stays readable.
PERSON_FIELDS = ("name", "personal_number", "email")
MASKED_PERSON_FIELDS = PERSON_FIELDS  # the name used before the policy had a package


def has_clearance(user) -> bool:
    """Whether the login account is cleared to see people with protected identity."""
    if user is None or not getattr(user, "id", None):
        return False
    return bool(db.session.execute(
        select(AccountLink.protected_identity_clearance).where(AccountLink.user_id == user.id)
    ).scalar())


def current_user():
    """The logged-in user of this request (browser session or API token), or None."""
    if not has_request_context():
        return None
    from flask_login import current_user as login_user

    if getattr(login_user, "is_authenticated", False):
        return login_user._get_current_object()
    user = g.get("user")  # an API token's user
    return user if getattr(user, "is_authenticated", False) and getattr(user, "id", None) \
        else None


def clearance_of(user_id_column):
    """The clearance of the login `user_id_column` names, as a scalar subquery: read with the
    request's login in the statement that loads it (app.security)."""
    return (select(AccountLink.protected_identity_clearance)
            .where(AccountLink.user_id == user_id_column).scalar_subquery())


def remember_clearance(user_id, cleared) -> None:
    """The clearance of the request's login, read with the login itself: kept for the request
    as `current_user_cleared` keeps what it reads."""
    if has_request_context():
        g.protected_identity_clearance = (user_id, bool(cleared))


@event.listens_for(db.session, "after_flush")
def _forget_clearance_when_a_link_changes(session, _context):
    """A request that writes an account link reads the clearance again."""
    if has_app_context() and any(isinstance(row, AccountLink) for row in (
            *session.new, *session.dirty, *session.deleted)):
        g.pop("protected_identity_clearance", None)


def current_user_cleared() -> bool:
    """The clearance of the logged-in user, looked up once per request. Outside a request (a
    job, a command) nobody is reading, so nothing is cleared: what a job renders is masked."""
    user = current_user()
    if user is None:
        return False
    user_id = user.id
    cached = g.get("protected_identity_clearance")
    if cached is None or cached[0] != user_id:
        cached = g.protected_identity_clearance = (user_id, has_clearance(user))
    return cached[1]


def _cleared(cleared) -> bool:
    return current_user_cleared() if cleared is None else bool(cleared)


def hidden(person, cleared=None) -> bool:
    """Whether the person's details are masked for the reader (the logged-in user unless
    `cleared` says otherwise). The clearance is looked up only for a protected person."""
    if person is None or not getattr(person, "protected_identity", False):
        return False
    return not _cleared(cleared)


is_masked = hidden


def field_value(person, field, value, cleared=None):
    """`value` of the person's `field` as the reader may see it."""
    if field in PERSON_FIELDS and hidden(person, cleared):
        return str(MASK) if field == "name" else None
    return value


def display_name(person, cleared=None) -> str:
    if person is None:
        return ""
    return str(MASK) if hidden(person, cleared) else person.name


def shown_name(name, protected, cleared=None) -> str:
    """A person's name read as a plain column next to its protected flag (no Person loaded)."""
    if name is None:
        return ""
    return str(MASK) if protected and not _cleared(cleared) else name


def person_label(person, cleared=None) -> str:
    """Name and HSA-id, or the mask and the HSA-id."""
    if person is None:
        return ""
    return f"{display_name(person, cleared)} ({person.hsa_id})"


def format_personal_number(number) -> str:
    if not number:
        return ""
    return f"{number[:8]}-{number[8:]}" if len(number) == 12 else number


def person_label_with_number(person, cleared=None) -> str:
    """Name and personal identity number, or only the mask."""
    if person is None:
        return ""
    if hidden(person, cleared):
        return str(MASK)
    number = format_personal_number(person.personal_number)
    return f"{person.name} ({number})" if number else person.name


def person_view(person, cleared=None) -> dict | None:
    """hsa_id, name and the flag; the name masked for a protected person unless cleared."""
    if person is None:
        return None
    return {
        "hsa_id": person.hsa_id,
        "name": display_name(person, cleared),
        "protected_identity": bool(person.protected_identity),
    }


class MaskedPerson:
    """What a reader without clearance may know of a protected person: a stand-in with the same
    attributes as a Person for templates and formatters, identifying fields masked."""

    protected_identity = True
    personal_number = None
    email = None

    def __init__(self, person):
        self._person = person
        self.id = person.id
        self.hsa_id = person.hsa_id
        self.unit = person.unit
        self.unit_id = person.unit_id

    @property
    def name(self):
        return str(MASK)

    def __getattr__(self, key):
        # Anything not identifying (relations, flags) as the person has it.
        return getattr(self._person, key)

    def __str__(self):
        return f"{MASK} ({self.hsa_id})"

    __repr__ = __str__

    def __eq__(self, other):
        return getattr(other, "id", None) == self.id and isinstance(other, (Person, MaskedPerson))

    def __hash__(self):
        return hash(("person", self.id))


def shown(person, cleared=None):
    """The person as the reader may see them: the person itself, or a MaskedPerson."""
    if isinstance(person, Person) and hidden(person, cleared):
        return MaskedPerson(person)
    return person


def mask_dict(data: dict) -> dict:
    """Mask, in place, a serialised person (any subset of its columns), as API.md says:
    protected_identity true, the name the mask, personal number and e-mail null."""
    for key in PERSON_FIELDS:
        if key in data:
            data[key] = str(MASK) if key == "name" else None
    data["protected_identity"] = True
    return data


def mask_login_dict(data: dict) -> dict:
    """Mask, in place, a serialised login (any subset of its columns)."""
    for key in USER_FIELDS:
        if key in data:
            data[key] = None if key == "email" else str(MASK)
    return data


def mask_rows(rows, cleared=None) -> None:
    """Mask, in place, serialised people that carry their protected flag."""
    if _cleared(cleared):
        return
    for row in rows:
        if row.get("protected_identity"):
            mask_dict(row)


def protected_logins():
    """A select of the ids of the login accounts that belong (or, deleted, belonged) to a
    protected person: what a deleted login did stays masked (models.RetiredLogin)."""
    linked = (select(AccountLink.user_id).join(Person, Person.id == AccountLink.person_id)
              .where(Person.protected_identity.is_(True)))
    return union_all(linked, retired_logins_of_protected(RetiredLogin.user_id))


def retired_logins_of_protected(*columns):
    """A select of `columns` (of RetiredLogin and Person) of the deleted logins whose person
    is protected."""
    return (select(*columns).join_from(RetiredLogin, Person, Person.id == RetiredLogin.person_id)
            .where(Person.protected_identity.is_(True)))


PROTECTED_LOGINS_KEY = "reservkort.access.protected_logins"


def _protected_login_ids() -> set:
    """The ids of the protected people's logins, read once per request (and again after a
    flush that changed who is protected: app.access.redaction forgets them)."""
    cache = request.environ if has_request_context() else {}
    if PROTECTED_LOGINS_KEY not in cache:
        cache[PROTECTED_LOGINS_KEY] = set(db.session.execute(protected_logins()).scalars())
    return cache[PROTECTED_LOGINS_KEY]


def login_hidden(user, cleared=None) -> bool:
    """Whether a login account (or login id) is masked: it belongs to a protected person and
    the reader is not cleared (nor that login itself)."""
    user_id = user if isinstance(user, int) else getattr(user, "id", None)
    if not user_id or user_id not in _protected_login_ids() or _cleared(cleared):
        return False
    return cleared is not None or user_id != getattr(current_user(), "id", None)


def shown_login(user, text, cleared=None):
    """How a login is written for the reader, wherever a login is named (FAB's user screens,
    roles and groups, the audit log's "who", a note's author, history): `text` (its username
    or names) as it is, or the mask for a protected person's login and a reader without
    clearance. `user`: the login or its id."""
    return str(MASK) if login_hidden(user, cleared) else text


_fab_login_text = User.__repr__


def _login_text(user) -> str:
    """A login as text (FAB writes its first and last name wherever it names a login: the
    roles' and groups' lists, their forms' choices, related lists), through `shown_login`.
    Should the check itself fail, the login is masked (never its names by accident)."""
    try:
        with db.session.no_autoflush:
            return shown_login(user, _fab_login_text(user))
    except SQLAlchemyError:
        return str(MASK)


# Every place that shows a login as text goes through the policy, not only the user screens.
User.__repr__ = _login_text


# --- writes ----------------------------------------------------------------------------------

def may_edit_person(person) -> bool:
    """Anyone who may edit people may add one or turn protection on; only a cleared login may
    change a person who has protected identity (lifting it included). A job or command acts
    for the system, which the policy does not restrict."""
    if person is None or not person.protected_identity:
        return True
    if current_user() is None:
        return True
    return current_user_cleared()


def check_person_edit(person) -> None:
    """Refuse (`protected_identity_clearance_required`) a change the login may not make."""
    if not may_edit_person(person):
        raise refuse("protected_identity_clearance_required", field="protected_identity")
