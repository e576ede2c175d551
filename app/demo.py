"""Demo data: units of each type, pickup points, sealed cards, people in every situation the rules
care about, and one login per role. Idempotent: a second load changes nothing."""

from datetime import date, timedelta

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


def load():
    """Create the demo data if absent. Returns the logins created (empty when already there)."""
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
