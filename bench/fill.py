"""Fill a migrated PostgreSQL database fast with COPY: people with Kobe records, units, pickup
points, cards, issuances in every state with their attesters, receipts and extensions, and
deviations.

The data keeps the invariants the database and the rules rely on: at most one open issuance per
person and per card, every card lent out is bound to its one holder, and the state looks as if
the sweeps had run until yesterday (only one day of deadlines is left for the first sweep).
Randomness is a hash of the row number, so every pass over a table sees the same choices.
"""

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import islice

from sqlalchemy import text

from app import clock
from app.extensions import db

COPY_CHUNK = 20_000
HISTORY_YEARS = 5
HISTORY_ENDS_DAYS_AGO = 45
SERIAL_BASE = 8_752_270_000_000_000
MAX_DAYS = {"forgotten": 10, "lost_stolen_damaged": 30, "awaiting_new_card": 30,
            "temporary_assignment": 100}
REASON_WEIGHTS = (("forgotten", 0.5), ("lost_stolen_damaged", 0.2), ("awaiting_new_card", 0.2),
                  ("temporary_assignment", 0.1))
# The state of each lent card's latest issuance; every earlier one is returned.
FINAL_WEIGHTS = (
    ("returned", 0.86), ("awaiting_approval", 0.03), ("approved", 0.03), ("extended", 0.01),
    ("expired", 0.02), ("prepared", 0.003), ("sent", 0.005), ("receipt_received", 0.003),
    ("active", 0.009), ("rejected", 0.01), ("blocked", 0.01),
)
MAIL_STATUSES = ("prepared", "sent", "receipt_received", "active")
RETURNED_CARD_WEIGHTS = (("in_stock", 0.6), ("returned", 0.15), ("destroyed", 0.25))
FIRST_NAMES = ("Anna", "Åsa", "Björn", "Örjan", "Cecilia", "Ängla", "David", "Eva", "Fredrik",
               "Göran", "Helena", "Ingrid", "Johan", "Karin", "Lars", "Märta", "Nils", "Olle",
               "Petra", "Sören", "Tove", "Ulla", "Viktor", "Yngve")
LAST_NAMES = ("Andersson", "Bäck", "Dahl", "Ek", "Falk", "Gran", "Holm", "Isaksson", "Jönsson",
              "Karlsson", "Lind", "Malm", "Nord", "Öberg", "Persson", "Quist", "Ström", "Åkesson",
              "Törnqvist", "Wallin")
ORG_TYPES = ("region", "private_care_provider", "municipality")
_MASK = (1 << 64) - 1


@dataclass(frozen=True)
class Sizes:
    """How many rows of each kind; scale 1.0 is a large region."""

    people: int
    units: int
    pickup_points: int
    cards: int
    issuances: int
    deviations: int

    @classmethod
    def at(cls, scale: float) -> "Sizes":
        return cls(
            people=max(60, round(1_000_000 * scale)),
            units=max(3, round(2_000 * scale)),
            pickup_points=max(2, round(50 * scale)),
            cards=max(30, round(200_000 * scale)),
            issuances=max(20, round(1_000_000 * scale)),
            deviations=max(5, round(100_000 * scale)),
        )


def rand(i: int, salt: int) -> float:
    """A uniform number in [0, 1) from (row, salt): the same on every pass (splitmix64)."""
    x = (i * 0x9E3779B97F4A7C15 + salt * 0xD1B54A32D192ED03 + 0x632BE59BD9B4E019) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return ((x ^ (x >> 31)) >> 11) / 9007199254740992.0


def pick(weights, u: float) -> str:
    for value, weight in weights:
        if u < weight:
            return value
        u -= weight
    return weights[-1][0]


_BIRTH_DAYS = 20_000
_birth_digits: list[str] = []


def personal_number(n: int) -> str:
    """A valid 12-digit Swedish personal identity number, unique per n (< 8 million)."""
    if not _birth_digits:
        first = date(1950, 1, 1)
        _birth_digits.extend(f"{first + timedelta(days=d):%Y%m%d}" for d in range(_BIRTH_DAYS))
    born = _birth_digits[n % _BIRTH_DAYS]
    digits = f"{born[2:]}{600 + n // _BIRTH_DAYS:03d}"
    total = 0
    for position, char in enumerate(digits):
        product = int(char) * (2 - position % 2)
        total += product // 10 + product % 10
    return f"{born[:2]}{digits}{(10 - total % 10) % 10}"


def copy_rows(cursor, table: str, columns, lines) -> int:
    """COPY the lines into the table, a chunk at a time from memory; returns the row count."""
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    total = 0
    while batch := list(islice(lines, COPY_CHUNK)):
        with cursor.copy(statement) as copy:
            copy.write("".join(batch))
        total += len(batch)
    return total


def line(values) -> str:
    """One row in COPY's text format (our values hold no tabs, newlines or backslashes)."""
    return "\t".join(["\\N" if v is None else str(v) for v in values]) + "\n"


class World:
    """The plan of the data: which person, card, status and dates each row gets."""

    def __init__(self, sizes: Sizes, first_ids: dict, now: datetime):
        self.sizes = sizes
        self.first = first_ids
        self.now = now
        self.today = clock.to_local(now).date()
        # Lent cards, each bound to its one holder; the rest never left the stock.
        self.used = min(round(sizes.cards * 0.7), sizes.issuances, sizes.people // 3)
        self.step = sizes.people // self.used
        self.history_end = now - timedelta(days=HISTORY_ENDS_DAYS_AGO)
        self.history_start = self.history_end - timedelta(days=365 * HISTORY_YEARS)
        self.history_seconds = (self.history_end - self.history_start).total_seconds()
        self.kobe_since = self.history_start - timedelta(days=1)

    # --- ids ------------------------------------------------------------------------------
    def person_id(self, n):
        return self.first["people"] + n

    def unit_id(self, n):
        return self.first["units"] + n % self.sizes.units

    def card_id(self, c):
        return self.first["reserve_cards"] + c

    def issuance_id(self, i):
        return self.first["issuances"] + i

    def holder(self, card):
        """The person index a lent card is bound to (attesters are the next two people)."""
        return card * self.step

    def is_final(self, i):
        return i >= self.sizes.issuances - self.used

    def final_status(self, card):
        return pick(FINAL_WEIGHTS, rand(card, 1))

    # --- issuances ----------------------------------------------------------------------
    def issuance(self, i) -> dict:
        card = i % self.used
        status = self.final_status(card) if self.is_final(i) else "returned"
        reason = pick(REASON_WEIGHTS, rand(i, 2))
        if status in MAIL_STATUSES:
            reason = "lost_stolen_damaged" if rand(i, 3) < 0.7 else "temporary_assignment"
        row = {
            "id": self.issuance_id(i), "status": status, "reason": reason, "card": card,
            "card_id": self.card_id(card), "recipient_id": self.person_id(self.holder(card)),
            "channel": "registered_mail" if status in MAIL_STATUSES else "in_person",
            "original_days": MAX_DAYS[reason],
        }
        if status in ("returned", "rejected", "blocked"):
            self._history_dates(i, row)
        else:
            getattr(self, "_" + status)(i, row)
        waiting = status in ("awaiting_approval", "approved", "extended")
        if waiting and row["channel"] == "in_person" and row["receipt_received_at"] is None:
            # As if the sweep had run yesterday: only today's reminders are left to send.
            if row["receipt_due"] < self.today + timedelta(2):
                row["receipt_reminder_at"] = self.now - timedelta(days=1)
        return row

    def _local_day(self, moment):
        return clock.to_local(moment).date()

    def _base(self, row, created, days=None, day=None):
        days = days or row["original_days"]
        day = day or self._local_day(created)
        row.update(created_at=created, issued_at=created, valid_until=day + timedelta(days),
                   receipt_due=day + timedelta(7), receipt_received_at=None)
        return day

    def _approved_fields(self, row, created):
        row.update(approved_at=created + timedelta(hours=2), kobe_reference=f"KOBE-{row['id']}",
                   checks_confirmed=True)

    def _expiry_reminders(self, row):
        end = row["valid_until"]
        if end < self.today + timedelta(7):
            row["expiry_reminder_7_at"] = self.now - timedelta(days=1)
        if end < self.today + timedelta(3):
            row["expiry_reminder_3_at"] = self.now - timedelta(days=1)

    def _history_dates(self, i, row):
        created = self.history_start + timedelta(
            seconds=self.history_seconds * i / self.sizes.issuances)
        days = row["original_days"]
        self._base(row, created, day=created.date())
        row["receipt_received_at"] = created + timedelta(days=1 + 5 * rand(i, 4))
        if row["status"] == "returned":
            self._approved_fields(row, created)
            row["returned_at"] = created + timedelta(days=1 + (days - 1) * rand(i, 5))
        elif row["status"] == "rejected":
            row.update(rejected_at=created + timedelta(hours=3),
                       rejection_reason="Kontrollen i Kobe stämde inte.")
        else:  # blocked for a receipt that never came
            row.update(receipt_received_at=None, blocked_at=created + timedelta(days=8),
                       block_reason="Kvittensen kom inte in till Servicecenter i tid.")

    def _awaiting_approval(self, i, row):
        self._base(row, self.now - timedelta(days=8 * rand(i, 6)))

    def _approved(self, i, row):
        days = row["original_days"]
        created = self.now - timedelta(days=(days + 1) * rand(i, 6))
        self._base(row, created)
        self._approved_fields(row, created)
        recent = created > self.now - timedelta(days=7)
        row["receipt_received_at"] = (None if recent and rand(i, 7) < 0.4
                                      else created + timedelta(days=1))
        self._expiry_reminders(row)

    def _extended(self, i, row):
        days = row["original_days"]
        created = self.now - timedelta(days=days + (days + 1) * rand(i, 6))
        day = self._base(row, created, days=2 * days)
        self._approved_fields(row, created)
        row["receipt_received_at"] = created + timedelta(days=1)
        row["extension"] = (created + timedelta(days=days / 2), day + timedelta(days),
                            day + timedelta(2 * days))
        self._expiry_reminders(row)

    def _expired(self, i, row):
        end = self.today - timedelta(days=1 + int(30 * rand(i, 6)))
        created = datetime.combine(end - timedelta(row["original_days"]), datetime.min.time())
        created += timedelta(hours=9)
        self._base(row, created)
        self._approved_fields(row, created)
        expired_at = datetime.combine(end + timedelta(1), datetime.min.time())
        row.update(receipt_received_at=created + timedelta(days=1), expired_at=expired_at,
                   return_requested_at=expired_at, expiry_reminder_7_at=expired_at,
                   expiry_reminder_3_at=expired_at)

    def _mail(self, row, created, dispatched_days=None):
        self._base(row, created)
        row.update(receipt_due=None, address="Storgatan 1, 302 50 Halmstad",
                   justification="Personen arbetar på distans.")
        if dispatched_days is not None:
            dispatched = created + timedelta(days=dispatched_days)
            row.update(dispatched_at=dispatched, registered_mail_number=f"RR{row['id']:09d}SE",
                       receipt_due=self._local_day(dispatched) + timedelta(14))

    def _prepared(self, i, row):
        self._mail(row, self.now - timedelta(days=3 * rand(i, 6)))

    def _sent(self, i, row):
        self._mail(row, self.now - timedelta(days=1 + 15 * rand(i, 6)), dispatched_days=1)

    def _receipt_received(self, i, row):
        created = self.now - timedelta(days=16 + 10 * rand(i, 6))
        self._mail(row, created, dispatched_days=1)
        row["receipt_received_at"] = created + timedelta(days=6)

    def _active(self, i, row):
        created = self.now - timedelta(days=10 + 15 * rand(i, 6))
        self._mail(row, created, dispatched_days=1)
        row.update(receipt_received_at=created + timedelta(days=6),
                   certificate_issued_at=created + timedelta(days=8),
                   id_method="Identifierad med rekommenderad post")
        self._expiry_reminders(row)

    # --- deviations ---------------------------------------------------------------------
    def deviation_kinds(self, i, row) -> list[tuple[str, str]]:
        """(type, status) of the deviations an issuance has."""
        status = row["status"]
        if status in ("rejected", "blocked") or (
                status == "expired" and row["valid_until"] < self.today - timedelta(8)):
            kinds = [("not_returned", "open" if rand(i, 8) < 0.7 else "in_progress")]
            if status == "blocked":
                kinds.append(("receipt_missing_blocked", "closed"))
            return kinds
        if status == "returned" and rand(i, 9) < self.history_deviation_share:
            kind = pick((("not_returned", 0.8), ("manual", 0.12), ("card_lost", 0.08)),
                        rand(i, 10))
            return [(kind, "closed")]
        return []

    @property
    def history_deviation_share(self) -> float:
        weight = dict(FINAL_WEIGHTS)
        required = self.used * (weight["rejected"] + 2 * weight["blocked"]
                                + weight["expired"] * 22 / 30)
        returned = self.sizes.issuances - self.used + self.used * weight["returned"]
        return max(0.0, self.sizes.deviations - required) / returned


class Filler:
    """Writes the planned rows table by table with COPY."""

    def __init__(self, world: World, cursor):
        self.w = world
        self.cursor = cursor

    def run(self) -> dict:
        counts = {}
        for table, method in (
            ("units", self.units), ("pickup_points", self.pickup_points),
            ("people", self.people), ("kobe_register", self.kobe),
            ("reserve_cards", self.cards),
        ):
            columns, lines = method()
            counts[table] = copy_rows(self.cursor, table, columns, lines)
        counts.update(self.issuance_family())
        return counts

    def units(self):
        w = self.w
        columns = ("id", "name", "hsa_id", "org_type_code", "parent_id")
        kinds = {"region": "Vårdenhet", "private_care_provider": "Vårdcentral",
                 "municipality": "Hemsjukvård"}

        def rows():
            for n in range(w.sizes.units):
                org = ORG_TYPES[n % 3]
                yield line((w.first["units"] + n, f"{kinds[org]} {n + 1}",
                            f"SE2321000131-U{n:07d}", org, None))
        return columns, rows()

    def pickup_points(self):
        w = self.w
        columns = ("id", "name", "address", "min_stock", "active")

        def rows():
            for n in range(w.sizes.pickup_points):
                yield line((w.first["pickup_points"] + n, f"Utlämningsplats {n + 1}",
                            f"Sjukhusvägen {n + 1}, 301 85 Halmstad", 5, True))
        return columns, rows()

    def people(self):
        w = self.w
        columns = ("id", "hsa_id", "personal_number", "name", "email", "unit_id",
                   "protected_identity", "card_office_role", "created_at")
        first_names, last_names = len(FIRST_NAMES), len(LAST_NAMES)

        def rows():
            for n in range(w.sizes.people):
                protected = n % 997 == 500
                number = None if n % 991 == 400 else personal_number(n)
                name = f"{FIRST_NAMES[n % first_names]} {LAST_NAMES[(n // 7) % last_names]}"
                yield line((w.person_id(n), f"SE2321000131-B{n:08d}", number, name,
                            f"b{n}@bench.example.se", w.unit_id(n), protected, None,
                            w.history_start))
        return columns, rows()

    def kobe(self):
        w = self.w
        columns = ("id", "person_id", "ordinary_card", "reserve_card_order", "updated_at",
                   "updated_by")

        def rows():
            for n in range(w.sizes.people):
                # The two people after each holder attested for them: they hold a card.
                if n % w.step in (1, 2):
                    card = "active"
                else:
                    card = pick((("active", 0.75), ("ordered", 0.12), ("none", 0.13)),
                                rand(n, 11))
                yield line((w.first["kobe_register"] + n, w.person_id(n), card,
                            rand(n, 12) < 0.08, w.kobe_since, "bench"))
        return columns, rows()

    def cards(self):
        w = self.w
        columns = ("id", "serial", "product_code", "loa", "expires_on", "status",
                   "pickup_point_id", "bound_person_id", "created_at")

        def rows():
            for c in range(w.sizes.cards):
                lent = c < w.used
                if lent:
                    final = w.final_status(c)
                    status = (pick(RETURNED_CARD_WEIGHTS, rand(c, 13)) if final == "returned"
                              else "issued")
                    bound = w.person_id(w.holder(c))
                    expires = w.today + timedelta(days=365 + int(1400 * rand(c, 14)))
                else:
                    status, bound = "in_stock", None
                    expires = w.today + timedelta(days=30 + int(1770 * rand(c, 14)))
                loa = "LOA3" if not lent and c % 10 == 0 else "LOA2"
                yield line((w.card_id(c), SERIAL_BASE + c, "473" if c % 2 else "573", loa,
                            expires, status, w.first["pickup_points"] + c % w.sizes.pickup_points,
                            bound, w.history_start))
        return columns, rows()

    ISSUANCE_COLUMNS = (
        "id", "channel", "status", "card_id", "recipient_id", "reason", "created_at",
        "issued_at", "valid_until", "original_days", "receipt_due", "kobe_reference",
        "checks_confirmed", "approved_at", "rejection_reason", "rejected_at", "block_reason",
        "blocked_at", "expired_at", "return_requested_at", "returned_at", "address",
        "justification", "registered_mail_number", "dispatched_at", "id_method",
        "certificate_issued_at", "receipt_reminder_at", "expiry_reminder_7_at",
        "expiry_reminder_3_at",
    )
    # Written in this order, so each row's references exist before it.
    FAMILY = {
        "issuances": ISSUANCE_COLUMNS,
        "issuance_attesters": ("id", "issuance_id", "person_id", "user_id", "position",
                               "authenticated_at"),
        "receipts": ("id", "issuance_id", "kind", "due_on", "received_at", "data_copy"),
        "extensions": ("id", "issuance_id", "requested_at", "previous_valid_until",
                       "new_valid_until", "reason"),
        "deviations": ("id", "type", "status", "issuance_id", "person_id", "unit_id",
                       "card_serial", "description", "created_at", "closed_at"),
    }
    CHECKS = json.dumps({key: True for key in ("identity", "reason", "card", "attesters",
                                               "card_or_order")})

    def issuance_family(self) -> dict:
        """One pass over the planned issuances: each chunk of issuances is copied, then the
        attesters, receipts, extensions and deviations of that chunk."""
        w = self.w
        counts = dict.fromkeys(self.FAMILY, 0)
        next_ids = {table: w.first[table] for table in self.FAMILY}
        for start in range(0, w.sizes.issuances, COPY_CHUNK):
            chunk = {table: [] for table in self.FAMILY}
            for i in range(start, min(start + COPY_CHUNK, w.sizes.issuances)):
                self._family_lines(i, w.issuance(i), chunk, next_ids)
            for table, lines in chunk.items():
                if lines:
                    counts[table] += copy_rows(self.cursor, table, self.FAMILY[table],
                                               iter(lines))
        return counts

    def _family_lines(self, i, row, chunk, next_ids):
        w = self.w

        def add(table, *values):
            chunk[table].append(line((next_ids[table], *values)))
            next_ids[table] += 1

        row["checks_confirmed"] = self.CHECKS if row.get("checks_confirmed") else None
        chunk["issuances"].append(line([row.get(column) for column in self.ISSUANCE_COLUMNS]))
        holder = w.holder(row["card"])
        mail = row["channel"] == "registered_mail"
        if not mail:
            for position in (1, 2):
                add("issuance_attesters", row["id"], w.person_id(holder + position), None,
                    position, row["created_at"])
        add("receipts", row["id"], "manual" if mail else "application", row["receipt_due"],
            row["receipt_received_at"], json.dumps({"address": row["address"]}) if mail else None)
        if "extension" in row:
            add("extensions", row["id"], *row["extension"], row["reason"])
        kinds = w.deviation_kinds(i, row)
        if kinds:
            created = datetime.combine(row["valid_until"] + timedelta(8),
                                       datetime.min.time()) + timedelta(hours=3)
        for kind, status in kinds:
            closed = (row.get("returned_at") or created + timedelta(days=3)
                      if status == "closed" else None)
            add("deviations", kind, status, row["id"], w.person_id(holder), w.unit_id(holder),
                SERIAL_BASE + row["card"], "Reservkortet följs upp.", created, closed)


FILLED_TABLES = ("units", "pickup_points", "people", "kobe_register", "reserve_cards",
                 "issuances", "issuance_attesters", "receipts", "extensions", "deviations")


def first_ids() -> dict:
    """The next free id of each table we fill (the demo data is already there)."""
    return {
        table: db.session.execute(text(f"SELECT coalesce(max(id), 0) + 1 FROM {table}")).scalar()
        for table in FILLED_TABLES
    }


def reset_sequences(cursor) -> None:
    for table in FILLED_TABLES:
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
            f"(SELECT coalesce(max(id), 1) FROM {table}))"
        )


def fill(sizes: Sizes, now: datetime | None = None, fast: bool = True) -> dict:
    """Fill the app's database (in an app context) and ANALYZE it; returns rows per table.

    `fast` turns off the foreign-key triggers for the load (the data is generated
    consistent); the unique and check constraints stay on either way."""
    world = World(sizes, first_ids(), now or clock.now())
    db.session.commit()
    connection = db.engine.raw_connection()
    try:
        cursor = connection.cursor()
        if fast:
            cursor.execute("SET session_replication_role = replica")
        counts = Filler(world, cursor).run()
        reset_sequences(cursor)
        if fast:
            cursor.execute("SET session_replication_role = DEFAULT")
        # The triggers that mark a change of the protected people were off for the load too.
        cursor.execute("UPDATE protected_generation SET token = md5(random()::text) WHERE id = 1")
        connection.commit()
        # The planner needs the statistics of the new rows at once, and the visibility map
        # (index-only scans) what autovacuum would give a live database after the load.
        raw = connection.driver_connection
        raw.autocommit = True
        try:
            raw.cursor().execute("VACUUM ANALYZE" if fast else "ANALYZE")
        finally:
            raw.autocommit = False
    finally:
        connection.close()
    return counts
