"""Login accounts and their link to a person."""

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, or_, select
from sqlalchemy.orm import selectinload

from app import access, audit
from app.errors import NotFound
from app.extensions import db
from app.validation import FieldError
from app.validation import hsa_id as valid_hsa_id
from app.workflow._tx import step
from models import AccountLink, Person


def find_person(hsa_id: str) -> Person:
    from app import search

    if search.looks_like_a_name(hsa_id):
        # A name instead: the message names the people it matches (those the login may see).
        search.hsa_id_or_name(hsa_id, "hsa_id", accept_unique=False)
    person = db.session.execute(
        select(Person).where(Person.hsa_id == valid_hsa_id(hsa_id))
    ).scalar_one_or_none()
    if person is None:
        raise NotFound("person", hsa_id)
    return person


def _refuse_second_login(person, user_id=None) -> None:
    """A person has at most one login account."""
    taken_by = db.session.execute(
        select(AccountLink.user_id).where(AccountLink.person_id == person.id,
                                          AccountLink.user_id != (user_id or 0))
    ).scalar()
    if taken_by is not None:
        raise FieldError("hsa_id", _l(
            "%(hsa_id)s is already linked to another login account; remove that link first."
        ) % {"hsa_id": person.hsa_id})


def create_user(username, password, roles, hsa_id=None, email=None, first_name=None,
                last_name=None, commit=True, protected_identity_clearance=False):
    """Create a login with its roles; link it to the person with `hsa_id` when given (a person
    has at most one login: a second is refused with a FieldError on hsa_id), optionally
    cleared to see people with protected identity (which needs the person)."""
    from flask import current_app

    from app.passwords import problems

    sm = current_app.appbuilder.sm
    missing = problems(password)
    if missing:
        raise ValueError("password: needs " + ", ".join(missing))
    if sm.find_user(username=username):
        raise ValueError(f"username {username} is taken")
    role_objects = []
    for name in roles:
        role = sm.find_role(name)
        if role is None:
            raise ValueError(f"no role {name}")
        role_objects.append(role)
    person = find_person(hsa_id) if hsa_id else None
    if protected_identity_clearance and person is None:
        raise FieldError("hsa_id", _l(
            "Clearance for protected identity belongs to a login linked to a person: give the "
            "person's HSA-id."))
    if person is not None:
        _refuse_second_login(person)
        first_name = first_name or person.name.split(" ")[0]
        last_name = last_name or (person.name.split(" ", 1)[1:] or ["-"])[0]
        email = email or person.email
    user = sm.add_user(
        username=username,
        first_name=first_name or username,
        last_name=last_name or "-",
        email=email or f"{username}@example.se",
        role=role_objects,
        password=password,
    )
    if not user:
        raise ValueError(f"could not create user {username}")
    # The login itself is audited as FAB's other user changes are (app.security_audit).
    if person is not None:
        link = link_user(user, person, bool(protected_identity_clearance))
        audit.record("user.create_link", "user", user.id, before=None,
                     after=_link_state(link))
    if commit:
        db.session.commit()
    return user


def link_user(user, person, protected_identity_clearance=False) -> AccountLink:
    link = db.session.execute(
        select(AccountLink).where(AccountLink.user_id == user.id)
    ).scalar_one_or_none()
    if link is None:
        link = AccountLink(user_id=user.id, person_id=person.id)
        db.session.add(link)
    link.person_id = person.id
    link.protected_identity_clearance = protected_identity_clearance
    db.session.flush()
    return link


def _user(user_id):
    from flask import current_app

    user = db.session.get(current_app.appbuilder.sm.user_model, user_id) if user_id else None
    if user is None:
        raise NotFound("user", user_id)
    return user


def _current_link(user_id) -> AccountLink | None:
    return db.session.execute(
        select(AccountLink).where(AccountLink.user_id == user_id)
    ).scalar_one_or_none()


def _link_state(link: AccountLink | None) -> dict | None:
    if link is None:
        return None
    return {"hsa_id": link.person.hsa_id,
            "protected_identity_clearance": bool(link.protected_identity_clearance)}


@step
def set_link(user_id, hsa_id, protected_identity_clearance=False) -> AccountLink:
    """Link a login account to the person with `hsa_id` (or change its link or clearance)."""
    user = _user(user_id)
    person = find_person(hsa_id)
    _refuse_second_login(person, user.id)
    before = _link_state(_current_link(user.id))
    link = link_user(user, person, bool(protected_identity_clearance))
    db.session.refresh(link)
    audit.record("user.link", "user", user.id, before=before, after=_link_state(link))
    return link


@step
def remove_link(user_id) -> None:
    """Remove the link from a login account to its person."""
    user = _user(user_id)
    link = _current_link(user.id)
    if link is None:
        raise FieldError("hsa_id", _l("The login account is not linked to a person."))
    before = _link_state(link)
    db.session.delete(link)
    db.session.flush()
    audit.record("user.unlink", "user", user.id, before=before, after=None)


def _login_rows(search: str):
    """Every login with its person and clearance, in one statement."""
    from flask import current_app

    user_model = current_app.appbuilder.sm.user_model
    rows = (
        select(user_model, Person.name, Person.hsa_id, Person.protected_identity,
               AccountLink.protected_identity_clearance)
        .outerjoin(AccountLink, AccountLink.user_id == user_model.id)
        .outerjoin(Person, Person.id == AccountLink.person_id)
    )
    if search:
        pattern = f"%{search.lower()}%"
        rows = rows.where(or_(func.lower(user_model.username).like(pattern),
                              func.lower(Person.hsa_id).like(pattern)))
        # A search never finds a protected person's login for a reader without clearance.
        rows = rows.where(or_(Person.id.is_(None), access.findable_people()))
    return rows, user_model


def login_page(search: str, page: int, page_size: int):
    """(count, rows) of the logins matching `search` (username or HSA-id), one page ordered by
    username as the reader sees it, each with its roles, its person's name as the reader may
    see it, and whether it is cleared for protected identity."""
    # The reader's clearance is looked up with every page, searched or not: the statements per
    # page stay the same.
    access.current_user_cleared()
    rows, user_model = _login_rows(search)
    count = db.session.execute(select(func.count()).select_from(rows.subquery())).scalar()
    # A protected person's login sorts as the mask: its place must not tell its username.
    by_username = access.masked_order(user_model, "username")
    page_rows = db.session.execute(
        rows.options(selectinload(user_model.roles))
        .order_by(user_model.username if by_username is None else by_username, user_model.id)
        .limit(page_size).offset(page * page_size)
    ).all()
    return count, [
        {"user": user, "roles": ", ".join(sorted(role.name for role in user.roles)),
         "username": access.shown_name(user.username, protected),
         "person_name": access.shown_name(name, protected), "hsa_id": hsa_id,
         "login_name": access.shown_name(f"{user.first_name} {user.last_name}", protected),
         "clearance": bool(clearance)}
        for user, name, hsa_id, protected, clearance in page_rows
    ]
