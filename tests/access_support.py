"""Helpers for the access-policy tests: a cleared login, and the protected canary person who had
a card, a deviation, audit rows and e-mails."""

import json

import prison
from sqlalchemy import select, update

from app.extensions import db
from models import Person

MASK = "Skyddad identitet"
EVA = {"hsa_id": "SE2321000131-E000000000005", "name": "Eva Ek",
       "personal_number": "198506302234", "email": "person5@example.se"}
CLEARED_LOGIN = "cleared_sc"
PASSWORD = "Reservkort-demo-2026"
CANARY = {"name": "Zebulon Kanarieqvist", "personal_number": "19770707-0707",
          "email": "zebulon.kanarie@canary.example.se", "hsa_id": "SE2321000131-E000000009977"}
CANARY_LOGIN = "zebulon.kanarieqvist"
# The strings that must never reach a reader without clearance (the number in both forms).
CANARY_STRINGS = ("Zebulon", "Kanarieqvist", "197707070707", "19770707-0707",
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


def make_canary(app, as_user, with_login=False) -> dict:
    """The protected canary: added and given a card (an in-person application awaiting
    approval, with its e-mails queued) before the protection was turned on, then a deviation
    about the card. Its e-mails are sent after the protection (files in MAIL_DIR). Returns the
    ids a route needs."""
    from app import accounts, mailer
    from app.workflow import application, deviations, kobe, registers
    from models import AuditEvent, Deviation, KobeRecord, OutboxMessage, unit_managers
    from tests.workflow_support import attestations, free_cards

    chef_unit = db.session.execute(select(unit_managers.c.unit_id)).scalars().first()
    with as_user("servicecenter"):
        person = registers.save_person({**CANARY, "unit_id": chef_unit}, None)
        kobe.import_rows([{"hsa_id": CANARY["hsa_id"], "ordinary_card": "active",
                           "reserve_card_order": True}])
    # With a login of their own, its names and e-mail are copied from the person, and its
    # username is made of their name.
    login = (accounts.create_user(CANARY_LOGIN, PASSWORD, ["Intygsgivare", "Servicecenter"],
                                  hsa_id=CANARY["hsa_id"]) if with_login else None)
    helena = db.session.execute(
        select(Person).where(Person.name.like("Helena%"))).unique().scalar_one()
    with as_user("intygsgivare1"):
        issuance = application.apply_in_person(
            free_cards(1)[0], CANARY["hsa_id"], "temporary_assignment", attestations([helena]),
            recipient_present=True, envelope_unopened=True,
            # Free text that names them by their surname alone.
            assignment="Kanarieqvist täcker upp på akuten")
    with as_user("servicecenter"):
        registers.save_person({"protected_identity": True}, person.id)
        # Free text that names the canary, written after the protection was turned on.
        deviation = deviations.create("manual", f"{CANARY['name']} tappade kortet",
                                      issuance_id=issuance.id)
    if login is not None:
        # Their own login acts: its username is the audit row's "who" and the note's author,
        # and the note names them by the surname alone (a whole word of the name).
        with as_user(login.username):
            deviations.add_note(deviation.id, "Kanarieqvist har hittat kortet igen.")
        # ... and is who last updated their Kobe row (a column that holds a username).
        db.session.execute(update(KobeRecord).where(KobeRecord.person_id == person.id)
                           .values(updated_by=login.username))
    db.session.commit()
    mailer.dispatch_due()
    db.session.commit()
    ids = {
        "person": person.id, "issuance": issuance.id, "deviation": deviation.id,
        "card": issuance.card_id, "unit": chef_unit, "login": login.id if login else None,
        "kobe": db.session.execute(select(KobeRecord.id).where(
            KobeRecord.person_id == person.id)).scalar_one(),
        "audit": list(db.session.execute(select(AuditEvent.id).where(
            ((AuditEvent.entity == "person") & (AuditEvent.entity_id == person.id))
            | ((AuditEvent.entity == "issuance") & (AuditEvent.entity_id == issuance.id))
            | ((AuditEvent.entity == "deviation") & (AuditEvent.entity_id == deviation.id))
            | (AuditEvent.entity == "kobe_register")
            # their login's rows (FAB's user changes, app.security_audit): names and e-mail
            | ((AuditEvent.entity == "user") & (AuditEvent.entity_id == (
                login.id if login else None))))).scalars()),
        "outbox": list(db.session.execute(select(OutboxMessage.id).where(
            OutboxMessage.issuance_id == issuance.id)).scalars()),
    }
    assert db.session.get(Deviation, deviation.id).person_id == person.id
    assert ids["audit"] and ids["outbox"]
    return ids
