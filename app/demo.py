"""Demo data: units of each type, pickup points, sealed cards, people in every situation the rules
care about, and one login per role; and the living region on top (issuances in every state,
deviations open and closed), made by the workflow's own steps. Idempotent: a second load
changes nothing."""

import functools
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta

from sqlalchemy import select

from app import accounts, audit, clock
from app.extensions import db
from models import KobeRecord, Person, PickupPoint, ReserveCard, Unit, unit_managers

DEMO_PASSWORD = "Reservkort-demo-2026"

UNITS = [
    ("Hallands sjukhus Halmstad, Akutmottagningen", "SE2321000131-E000000000101", "region"),
    ("Capio Vårdcentral Laholm", "SE2321000131-E000000000102", "private_care_provider"),
    ("Falkenbergs kommun, Hemsjukvården", "SE2321000131-E000000000103", "municipality"),
]

PICKUP_POINTS = [
    ("Servicecenter Halmstad", "Lasarettsvägen 1, 301 85 Halmstad", 10),
    ("Reception Varbergs sjukhus", "Birger Svenssons väg 1, 432 37 Varberg", 5),
]

# name, hsa suffix, personal number, unit index, ordinary card, reserve order, protected,
# card-office role
PEOPLE = [
    ("Anna Åkesson", "E000000000001", "198001011231", 0, "active", False, False, None),
    ("Björn Östlund", "E000000000002", "199003151231", 0, "ordered", False, False, None),
    ("Cecilia Ängström", "E000000000003", "197512242236", 1, "none", True, False, None),
    ("David Dahl", "E000000000004", "200101011237", 2, "none", False, False, None),
    ("Eva Ek", "E000000000005", "198506302234", 0, "active", False, True, None),
    ("Fredrik Falk", "E000000000006", None, 1, "active", False, False, None),
    ("Gustav Gran", "E000000000007", "196012120231", 0, "active", False, False, None),
    ("Helena Håkansson", "E000000000008", "199912312239", 0, "active", False, False, None),
    ("Ingrid Isaksson", "E000000000009", "197001011235", 1, "active", False, False, "RA"),
    ("Johan Jönsson", "E000000000010", "198205051237", 2, "none", False, False, None),
    ("Karin Karlsson", "E000000000011", "197507071239", 0, "active", False, False, None),
    ("Lars Lind", "E000000000012", "198808081236", 0, "active", False, False, None),
    ("Maria Malm", "E000000000013", "199109091233", 0, "active", False, False, None),
    ("Nils Nord", "E000000000014", "198410101232", 0, "active", False, False, None),
]

# username, roles, person index (None for Admin)
LOGINS = [
    ("admin", ["Admin"], None),
    ("servicecenter", ["Servicecenter"], 11),
    ("televaxeln", ["Televäxeln"], 12),
    ("korthandlaggare", ["Korthandläggare"], 13),
    ("chef", ["Chef"], 10),
    ("intygsgivare1", ["Intygsgivare"], 6),
    ("intygsgivare2", ["Intygsgivare"], 7),
]


def hsa(suffix: str) -> str:
    return f"SE2321000131-{suffix}"


def load(living=True):
    """Create the demo data if absent, and with `living` the living region on top of it (on
    the first start only: a database someone has worked in is left alone). Returns the
    logins created (empty when already there)."""
    created = _load_base()
    if created and living:
        load_living()
    return created


def _load_base():
    from app.bootstrap import init_security_and_reference_data

    init_security_and_reference_data()
    if db.session.execute(select(Person.id).limit(1)).first():
        return []
    units = [Unit(name=n, hsa_id=h, org_type_code=t) for n, h, t in UNITS]
    points = [PickupPoint(name=n, address=a, min_stock=m) for n, a, m in PICKUP_POINTS]
    db.session.add_all(units + points)
    db.session.flush()
    people = _people(units)
    # Karin Karlsson (login chef) manages the first unit.
    db.session.execute(unit_managers.insert().values(unit_id=units[0].id, person_id=people[10].id))
    _cards(points)
    audit.record("demo.load", "demo", None, after={"people": len(people), "cards": 50})
    db.session.commit()
    created = []
    for username, roles, person_index in LOGINS:
        person = people[person_index] if person_index is not None else None
        accounts.create_user(username, DEMO_PASSWORD, roles,
                             hsa_id=person.hsa_id if person else None)
        created.append((username, DEMO_PASSWORD, roles))
    return created


def _people(units):
    people = []
    now = clock.now()
    for index, (name, suffix, pnr, unit, card, order, protected, role) in enumerate(PEOPLE):
        person = Person(
            hsa_id=hsa(suffix),
            personal_number=pnr,
            name=name,
            email=f"person{index + 1}@example.se",
            unit_id=units[unit].id,
            protected_identity=protected,
            card_office_role=role,
            created_at=now,
        )
        db.session.add(person)
        db.session.flush()
        db.session.add(KobeRecord(person_id=person.id, ordinary_card=card,
                                  reserve_card_order=order, updated_at=now, ordinary_card_since=now,
                                  updated_by="demo"))
        people.append(person)
    return people


def _cards(points):
    today = clock.today()
    products = [("473", 4), ("573", 5)]
    for index in range(50):
        product, years = products[index % 2]
        # Spread expiry so that the stock view has cards near their own expiry too.
        expires = date(today.year + years, today.month, 1) - timedelta(days=index * 40)
        db.session.add(ReserveCard(
            serial=f"{9752270000000000 + index + 1}",
            product_code=product,
            loa="LOA2" if index % 10 else "LOA3",
            expires_on=expires,
            status="in_stock",
            pickup_point_id=points[index % 2].id,
            created_at=clock.now(),
        ))


# --- the living region ------------------------------------------------------------------------
# Five weeks of one region's work, replayed through the workflow steps with the clock set back
# (each step as the login that takes it, the sweeps as the scheduler runs them), so that every
# queue, tile and report has content on first login. Dates are relative to today; the stories
# and serials are always the same.

SUBUNIT = ("Hallands sjukhus Halmstad, Barnakuten", "SE2321000131-E000000000104", "region")
FIRST_LIVING_SERIAL = 9752270000000101
LIVING_CARDS = 24  # the stories use the first 19; the rest stay in stock

# name, hsa suffix, personal number, unit key, ordinary card, reserve order
RECIPIENTS = [
    ("Oskar Olsson", "E000000000201", "198403121000", "acute", "active", False),
    ("Petra Persson", "E000000000202", "199106271076", "capio", "active", True),
    ("Rasmus Ryd", "E000000000203", "197809041143", "acute", "active", False),
    ("Sara Sjöberg", "E000000000204", "199501181219", "children", "active", False),
    ("Tobias Törnqvist", "E000000000205", "198711301286", "acute", "ordered", False),
    ("Ulrika Uddén", "E000000000206", "196904051353", "falkenberg", "active", False),
    ("Viktor Wallin", "E000000000207", "199308221424", "acute", "active", False),
    ("Ylva Åberg", "E000000000208", "198202151497", "acute", "active", False),
    ("Åke Öberg", "E000000000209", "197607091563", "capio", "active", False),
    ("Agnes Berg", "E000000000210", "199903011634", "acute", "active", False),
    ("Bertil Carlsson", "E000000000211", "198505261704", "falkenberg", "active", False),
    ("Dagny Eriksson", "E000000000212", "197110131773", "children", "active", False),
    ("Erik Fors", "E000000000213", "199009081846", "capio", "ordered", False),
    ("Frida Gustafsson", "E000000000214", "199702141913", "children", "active", False),
    ("Greta Holm", "E000000000215", "198006301983", "falkenberg", "none", True),
    ("Hugo Ivarsson", "E000000000216", "197401112052", "capio", "ordered", False),
    ("Ida Jakobsson", "E000000000217", "198804172123", "falkenberg", "active", False),
    ("Jonas Kvist", "E000000000218", "199207032195", "acute", "active", False),
    ("Klara Lundqvist", "E000000000219", "198309202268", "capio", "none", True),
]

ADDRESS = "Storgatan 12, 311 31 Falkenberg"
MAIL_WHY = "Arbetar på distans i Falkenberg; ingen behörig administratör på plats."

# Each story: recipient index (also the card's offset), reason, then its steps as
# (days ago, local time or minutes before now when 0 days ago, login, step, argument).
# The card of story i is FIRST_LIVING_SERIAL + i.
STORIES = [
    (0, "forgotten", [(0, 50, "intygsgivare1", "apply", None)]),
    (1, "temporary_assignment", [(0, 20, "intygsgivare1", "apply",
                                  "Vikariat på vårdcentralen i december")]),
    (2, "lost_stolen_damaged", [(6, "09:10", "intygsgivare1", "apply", None),
                                (6, "10:05", "televaxeln", "approve", None)]),
    (3, "forgotten", [(5, "08:40", "intygsgivare1", "apply", None),
                      (5, "09:30", "televaxeln", "approve", None),
                      (3, "13:15", "servicecenter", "receipt", None)]),
    (4, "awaiting_new_card", [(10, "14:20", "intygsgivare1", "apply", None),
                              (10, "15:00", "televaxeln", "approve", None)]),
    (5, "lost_stolen_damaged", [(8, "07:50", "intygsgivare1", "apply", None),
                                (8, "08:30", "televaxeln", "approve", None),
                                (7, "11:00", "servicecenter", "receipt", None),
                                (2, "16:10", "servicecenter", "block",
                                 "Medarbetaren har slutat; kortet ska tillbaka.")]),
    (6, "forgotten", [(9, "10:00", "intygsgivare1", "apply", None),
                      (9, "10:40", "televaxeln", "approve", None),
                      (8, "09:20", "servicecenter", "receipt", None),
                      (1, "15:30", "servicecenter", "extend", None)]),
    (7, "forgotten", [(25, "09:00", "intygsgivare1", "apply", None),
                      (25, "09:45", "televaxeln", "approve", None),
                      (24, "10:30", "servicecenter", "receipt", None),
                      (3, "14:00", "chef", "note",
                       "Ringt medarbetaren; kortet lämnas på måndag.")]),
    (8, "forgotten", [(13, "11:10", "intygsgivare1", "apply", None),
                      (13, "12:00", "televaxeln", "approve", None),
                      (12, "09:00", "servicecenter", "receipt", None)]),
    (9, "lost_stolen_damaged", [(30, "08:15", "intygsgivare1", "apply", None),
                                (30, "09:00", "televaxeln", "approve", None),
                                (29, "10:00", "servicecenter", "receipt", None),
                                (12, "13:30", "servicecenter", "return", "restock")]),
    (10, "forgotten", [(12, "07:30", "intygsgivare1", "apply", None),
                       (12, "08:15", "televaxeln", "approve", None),
                       (11, "10:45", "servicecenter", "receipt", None),
                       (1, "11:20", "servicecenter", "return", None)]),
    (11, "forgotten", [(35, "10:00", "intygsgivare1", "apply", None),
                       (35, "10:30", "televaxeln", "approve", None),
                       (34, "09:15", "servicecenter", "receipt", None),
                       (10, "14:45", "servicecenter", "return", "destroy"),
                       (9, "08:30", "chef", "note", "Kortet kom tillbaka; ärendet avslutas."),
                       (9, "08:31", "chef", "close", None)]),
    (12, "awaiting_new_card", [(2, "10:20", "intygsgivare1", "apply", None),
                               (2, "11:05", "televaxeln", "reject",
                                "Kobe visar ingen beställning av nytt kort.")]),
    (13, "lost_stolen_damaged", [(16, "09:40", "intygsgivare1", "apply", None),
                                 (16, "10:30", "televaxeln", "approve", None),
                                 (15, "13:00", "servicecenter", "receipt", None),
                                 (4, "08:05", "servicecenter", "lost",
                                  "Kortet tappades på pendeltåget.")]),
    (14, "temporary_assignment", [(0, 120, "korthandlaggare", "prepare", None)]),
    (15, "awaiting_new_card", [(4, "13:00", "korthandlaggare", "prepare", None),
                               (3, "09:10", "korthandlaggare", "dispatch", "RR123456785SE")]),
    (16, "forgotten", [(8, "10:00", "korthandlaggare", "prepare", None),
                       (7, "09:00", "korthandlaggare", "dispatch", "RR223456780SE"),
                       (1, "10:15", "korthandlaggare", "mail_receipt", None)]),
    (17, "lost_stolen_damaged", [(12, "11:00", "korthandlaggare", "prepare", None),
                                 (11, "09:00", "korthandlaggare", "dispatch", "RR323456784SE"),
                                 (6, "10:00", "korthandlaggare", "mail_receipt", None),
                                 (6, "10:20", "korthandlaggare", "certificate", None)]),
    (18, "temporary_assignment", [(20, "13:30", "korthandlaggare", "prepare", None),
                                  (19, "09:00", "korthandlaggare", "dispatch", "RR423456788SE")]),
]
# A deviation filed by hand: (days ago, time, login, recipient index, description).
MANUAL_DEVIATIONS = [
    (5, "15:40", "servicecenter", 5, "Kortet lämnades kvar i läsaren på hemsjukvårdens kontor."),
]
HISTORY_DAYS = 60  # people, Kobe rows and the cards' batch are this old


def living_serial(index: int) -> str:
    return str(FIRST_LIVING_SERIAL + index)


def has_living() -> bool:
    return db.session.execute(
        select(Person.id).where(Person.hsa_id == hsa(RECIPIENTS[0][1]))
    ).first() is not None


def load_living() -> bool:
    """Replay the living region's five weeks (once; False when it is there already)."""
    if has_living():
        return False
    now = clock.now()
    with clock.frozen_at(_moment(now, HISTORY_DAYS, "08:00")):
        _living_registers()
    ids = {}
    for moment, action in _timeline(now):
        with clock.frozen_at(moment):
            action(ids)
    return True


def _moment(now, days_ago, when):
    """Swedish wall-clock time `when` ("HH:MM") `days_ago` days before now; with 0 days,
    `when` minutes before now."""
    if days_ago == 0:
        return now - timedelta(minutes=when)
    day = clock.to_local(now).date() - timedelta(days=days_ago)
    hour, minute = (int(part) for part in when.split(":"))
    return clock.from_local(datetime.combine(day, time(hour, minute)))


@contextmanager
def _acting(username):
    """Take a step as that login, as its request would."""
    from flask import current_app, g
    from flask_login import login_user

    user = current_app.appbuilder.sm.find_user(username=username)
    with current_app.test_request_context():
        login_user(user)
        try:
            yield user
        finally:
            g.pop("_login_user", None)


def _living_registers():
    """The sub-unit, the recipients with their Kobe rows, and a batch of sealed envelopes,
    registered by Servicecenter."""
    from app.workflow import kobe, registers, stock

    units = dict(db.session.execute(select(Unit.hsa_id, Unit.id)).all())
    acute = units[UNITS[0][1]]
    unit_ids = {"acute": acute, "capio": units[UNITS[1][1]], "falkenberg": units[UNITS[2][1]]}
    with _acting("servicecenter"):
        name, hsa_id, org_type = SUBUNIT
        unit_ids["children"] = registers.save_unit(
            {"name": name, "hsa_id": hsa_id, "org_type_code": org_type, "parent_id": acute}).id
        for name, suffix, pnr, unit, card, order in RECIPIENTS:
            registers.save_person({"hsa_id": hsa(suffix), "personal_number": pnr, "name": name,
                                   "email": _email(name), "unit_id": unit_ids[unit]})
            kobe.set_record(hsa(suffix), card, order)
        point = db.session.execute(select(PickupPoint.id).order_by(PickupPoint.id)).scalar()
        stock.register_batch([living_serial(i) for i in range(LIVING_CARDS)], "473", "LOA2",
                             date(clock.today().year + 4, 1, 31), point)


def _email(name: str) -> str:
    ascii_name = name.lower().translate(str.maketrans("åäöéü ", "aaoeu."))
    return f"{ascii_name}@example.se"


def _timeline(now):
    """(moment, action) of every step, every manual deviation and every night's sweep, in
    time order."""
    entries = []
    for index, reason, steps in STORIES:
        for days_ago, when, login, step_name, argument in steps:
            entries.append((_moment(now, days_ago, when), _story_step(
                index, reason, login, step_name, argument)))
    for days_ago, when, login, index, text in MANUAL_DEVIATIONS:
        entries.append((_moment(now, days_ago, when), _manual_deviation(login, index, text)))
    first = max(days for _, _, steps in STORIES for days, *_ in steps)
    for days_ago in range(first, 0, -1):
        entries.append((_moment(now, days_ago, "23:00"), _sweep))
    entries.append((now, _sweep))
    entries.sort(key=lambda entry: entry[0])
    return entries


def _sweep(ids):
    from app.workflow import sweeps

    sweeps.run_all(trigger="demo")


def _manual_deviation(login, index, text):
    from app.workflow import deviations

    def action(ids):
        with _acting(login):
            deviations.create("manual", text, person_hsa_id=hsa(RECIPIENTS[index][1]))

    return action


def _story_step(index, reason, login, step_name, argument):
    def action(ids):
        with _acting(login) as user:
            result = STEPS[step_name](user, index, reason, ids.get(index), argument)
        if step_name in ("apply", "prepare"):
            ids[index] = result.id

    return action


def _apply(user, index, reason, issuance_id, assignment):
    from app.security import person_for_user
    from app.workflow import application

    # The demo's attesters stand at the counter together: their own authentication is
    # represented by the attestation (no password to check in a replay).
    helper = db.session.execute(select(Person).where(
        Person.hsa_id == hsa(PEOPLE[7][1]))).unique().scalar_one()
    attestations = [application.Attestation(person_for_user(user), clock.now()),
                    application.Attestation(helper, clock.now())]
    return application.apply_in_person(
        living_serial(index), hsa(RECIPIENTS[index][1]), reason, attestations,
        recipient_present=True, envelope_unopened=True, assignment=assignment)


def _approve(user, index, reason, issuance_id, argument):
    from app.workflow import approval
    from app.workflow._common import load_issuance

    checks = dict.fromkeys(approval.required_checks(load_issuance(issuance_id)), True)
    return approval.approve(issuance_id, f"KOBE-{40100 + index}", checks)


def _prepare(user, index, reason, issuance_id, argument):
    from app.workflow import mail_flow

    assignment = "Uppdrag i hemsjukvården" if reason == "temporary_assignment" else None
    return mail_flow.prepare(living_serial(index), hsa(RECIPIENTS[index][1]), reason, ADDRESS,
                             MAIL_WHY, assignment=assignment)


def _deviation_of(issuance_id):
    from models import Deviation

    return db.session.execute(select(Deviation.id).where(
        Deviation.issuance_id == issuance_id).order_by(Deviation.id)).scalars().first()


def _later_step(user, index, reason, issuance_id, argument, name=None):
    """A step on the story's issuance with the story's argument (a text, a choice or none)."""
    from app.workflow import approval, deviations, lifecycle, mail_flow

    steps = {
        "reject": lambda: approval.reject(issuance_id, argument),
        "receipt": lambda: lifecycle.register_receipt(issuance_id),
        "block": lambda: lifecycle.block(issuance_id, argument),
        "extend": lambda: lifecycle.extend(issuance_id),
        "return": lambda: lifecycle.return_card(issuance_id, then=argument),
        "lost": lambda: lifecycle.report_lost(issuance_id, argument),
        "dispatch": lambda: mail_flow.dispatched(issuance_id, argument),
        "mail_receipt": lambda: mail_flow.receipt_returned(issuance_id),
        "certificate": lambda: mail_flow.certificate_issued(issuance_id),
        "note": lambda: deviations.add_note(_deviation_of(issuance_id), argument),
        "close": lambda: deviations.close(_deviation_of(issuance_id)),
    }
    return steps[name]()


LATER_STEPS = ("reject", "receipt", "block", "extend", "return", "lost", "dispatch",
               "mail_receipt", "certificate", "note", "close")
STEPS = {
    "apply": _apply,
    "approve": _approve,
    "prepare": _prepare,
    **{name: functools.partial(_later_step, name=name) for name in LATER_STEPS},
}
