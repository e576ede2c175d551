"""Helpers for the access-policy tests: a cleared login, and the protected canary person who had
a card, a deviation, audit rows and e-mails."""

import json

import prison
from sqlalchemy import select

from app.extensions import db
from models import Person

MASK = "Skyddad identitet"
EVA = {"hsa_id": "SE2321000131-E000000000005", "name": "Eva Ek",
       "personal_number": "198506302234", "email": "person5@example.se"}
CLEARED_LOGIN = "cleared_sc"
PASSWORD = "Reservkort-demo-2026"
CANARY = {"name": "Zebulon Kanarieqvist", "personal_number": "19770707-0704",
          "email": "zebulon.kanarie@canary.example.se", "hsa_id": "SE2321000131-E000000009977"}
# The strings that must never reach a reader without clearance (the number in both forms).
CANARY_STRINGS = ("Zebulon", "Kanarieqvist", "197707070704", "19770707-0704",
                  "zebulon.kanarie", "canary.example.se")


def rison(**q) -> str:
    return prison.dumps(q)


def cleared_login(app, username=CLEARED_LOGIN, roles=("Servicecenter",),
                  hsa_id="SE2321000131-E000000000004"):
    """A login (Servicecenter by default) with clearance for protected identity."""
    from app import accounts

    user = app.appbuilder.sm.find_user(username=username)
    if user is None:
        accounts.create_user(username, PASSWORD, list(roles), hsa_id=hsa_id)
        user = app.appbuilder.sm.find_user(username=username)
    accounts.link_user(user, db.session.execute(
        select(Person).where(Person.hsa_id == hsa_id)).unique().scalar_one(),
        protected_identity_clearance=True)
    db.session.commit()
    return username


def person_id(hsa_id) -> int:
    return db.session.execute(select(Person.id).where(Person.hsa_id == hsa_id)).scalar_one()


def leaked(text: str, strings=CANARY_STRINGS) -> list[str]:
    lowered = text.lower()
    return [s for s in strings if s.lower() in lowered]


def dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
