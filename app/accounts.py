"""Login accounts and their link to a person."""

from sqlalchemy import select

from app import audit
from app.errors import NotFound
from app.extensions import db
from app.validation import hsa_id as valid_hsa_id
from models import AccountLink, Person


def find_person(hsa_id: str) -> Person:
    person = db.session.execute(
        select(Person).where(Person.hsa_id == valid_hsa_id(hsa_id))
    ).scalar_one_or_none()
    if person is None:
        raise NotFound("person", hsa_id)
    return person


def create_user(username, password, roles, hsa_id=None, email=None, first_name=None,
                last_name=None, commit=True):
    """Create a login with its roles; link it to the person with `hsa_id` when given."""
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
    if person is not None:
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
    if person is not None:
        link_user(user, person)
    audit.record("user.create", "user", user.id, after={"username": username, "roles": roles,
                                                        "hsa_id": hsa_id})
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
