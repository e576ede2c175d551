"""The living demo: a region where every state, queue, start-page count and report has content
on first login, made by the workflow's own steps (real audit rows and outbox rows), loaded
once and idempotent; the README's demo logins and serials exist as it says."""

import csv
import io
import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app import audit, clock
from app.extensions import db
from models import (
    ISSUANCE_STATUSES,
    AuditEvent,
    Deviation,
    Issuance,
    OutboxMessage,
    Receipt,
    ReserveCard,
    unit_managers,
)
from tests.conftest import DEMO_PASSWORD

README = Path(__file__).resolve().parent.parent / "README.md"


def _statuses() -> dict:
    return dict(db.session.execute(
        select(Issuance.status, func.count()).group_by(Issuance.status)).all())


def _pending_receipts():
    return (select(Issuance).join(Receipt, Receipt.issuance_id == Issuance.id)
            .where(Issuance.channel == "in_person", Receipt.received_at.is_(None)))


@pytest.mark.both_databases
def test_every_state_has_an_issuance(living_demo, dialect):
    assert set(_statuses()) == set(ISSUANCE_STATUSES)
    today = clock.today()
    pending = db.session.execute(_pending_receipts()).unique().scalars().all()
    assert any(i.status == "approved" and i.receipt_due >= today for i in pending)  # due
    assert any(i.receipt_due < today for i in pending)  # overdue (and so blocked)
    assert any(i.status == "awaiting_approval" for i in pending)
    mail = {i.status for i in db.session.execute(select(Issuance).where(
        Issuance.channel == "registered_mail")).unique().scalars()}
    assert {"prepared", "sent", "receipt_received", "active"} <= mail


def test_deviations_open_and_closed_in_units_with_managers(living_demo, app):
    from app.workflow.deviations import visible_unit_ids

    rows = db.session.execute(select(Deviation.type, Deviation.status, Deviation.unit_id)).all()
    assert {status for _, status, _ in rows} == {"open", "in_progress", "closed"}
    assert {kind for kind, _, _ in rows} == {
        "not_returned", "receipt_missing_blocked", "card_lost", "mail_receipt_not_returned",
        "manual"}
    # The manager's units: those they manage and every unit below them.
    managed = visible_unit_ids(app.appbuilder.sm.find_user(username="chef"))
    assert set(db.session.execute(select(unit_managers.c.unit_id)).scalars()) < managed
    assert {status for _, status, unit in rows if unit in managed} == {"open", "in_progress",
                                                                      "closed"}


def test_made_by_the_workflow_as_the_logins_whose_work_it_is(living_demo):
    """Every step wrote its audit row as the login that took it, the sweeps as the system;
    every application queued its e-mails; the audit chain holds."""
    actors = dict(db.session.execute(
        select(AuditEvent.action, func.min(AuditEvent.actor)).group_by(AuditEvent.action)).all())
    assert actors["issuance.apply"] == "intygsgivare1"
    assert actors["issuance.approve"] == actors["issuance.reject"] == "televaxeln"
    assert actors["receipt.register"] == actors["issuance.return"] == "servicecenter"
    assert actors["issuance.prepare"] == actors["issuance.certificate_issued"] == \
        "korthandlaggare"
    assert actors["issuance.block"] in ("servicecenter", "system")
    assert actors["deviation.close"] == "chef"
    assert {"issuance.expire", "issuance.extend", "issuance.lost"} <= set(actors)
    applied = db.session.execute(select(func.count()).where(
        AuditEvent.action == "issuance.apply")).scalar()
    completed = db.session.execute(select(func.count()).where(
        OutboxMessage.template == "application_completed")).scalar()
    assert applied == completed == 14
    # The history lies in the past: five weeks of it.
    first = db.session.execute(select(func.min(Issuance.created_at))).scalar()
    assert clock.now() - first > timedelta(days=30)
    assert audit.verify().ok


def _counts(page) -> dict:
    return {key: int(value) for key, value in
            re.findall(r'data-count="(\w+)" data-value="(\d+)"', page)}


@pytest.mark.both_databases
def test_every_role_has_its_counts_on_the_start_page(living_demo, login, dialect):
    nonzero = {
        "Servicecenter": {"receipts_due_soon", "receipts_overdue", "cards_out",
                          "expired_not_returned", "cards_to_restock", "open_deviations"},
        "Televäxeln": {"awaiting_approval"},
        "Korthandläggare": {"mail_in_progress", "cards_out", "expired_not_returned"},
        "Chef": {"open_deviations"},
        "Admin": {"cards_out", "open_deviations"},
    }
    for role, keys in nonzero.items():
        counts = _counts(login(role).get("/").get_data(as_text=True))
        assert {key for key, value in counts.items() if value} == keys, (role, counts)
    assert _counts(login("Intygsgivare").get("/").get_data(as_text=True)) == {}


def _links(page) -> dict:
    return dict(re.findall(r'data-count="(\w+)" data-value="\d+">\s*'
                           r'<div class="panel-heading">[^<]*</div>\s*'
                           r'<div class="panel-body">\s*<a href="([^"]+)"', page))


def test_a_filtered_count_opens_its_list_with_as_many_rows(living_demo, login):
    """Following the count to its list shows the same number of rows (the list is filtered
    to them where it would show more)."""
    for role, keys in (("Servicecenter", ("expired_not_returned", "open_deviations")),
                       ("Korthandläggare", ("expired_not_returned",)),
                       ("Chef", ("open_deviations",))):
        client = login(role)
        page = client.get("/").get_data(as_text=True)
        counts, links = _counts(page), _links(page)
        for key in keys:
            listing = client.get(links[key].replace("&amp;", "&")).get_data(as_text=True)
            shown = re.search(r"Antal poster:\s*(?:</strong>)?\s*(\d+)", listing)
            assert shown and int(shown.group(1)) == counts[key] > 0, (role, key, links[key])


def test_every_queue_has_content(living_demo, login):
    screens = {
        "Televäxeln": ("/approval/", "9752270000000101"),
        "Servicecenter": ("/receipts/", "9752270000000103"),
        "Korthandläggare": ("/mail-flow/", "9752270000000116"),
    }
    for role, (url, serial) in screens.items():
        page = login(role).get(url).get_data(as_text=True)
        assert serial in page, (role, url)
    assert "9752270000000111" in login("Servicecenter").get("/returns/").get_data(as_text=True)


def test_the_managers_deviation_report_has_rows(living_demo, login):
    data = login("Chef").get("/deviations/report/export?format=csv").get_data()
    header, *rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig")), delimiter=";"))
    assert len(rows) >= 4
    units = {row[header.index("Enhet")] for row in rows}
    assert units <= {"Hallands sjukhus Halmstad, Akutmottagningen",
                     "Hallands sjukhus Halmstad, Barnakuten"}
    assert len(units) == 2  # the manager's unit and the one below it
    assert {row[header.index("Status")] for row in rows} >= {"Öppen", "Stängd"}


def test_loading_again_changes_nothing(living_demo):
    def snapshot():
        return [db.session.execute(select(func.count()).select_from(model)).scalar()
                for model in (AuditEvent, Issuance, Deviation, OutboxMessage, ReserveCard)]

    before = snapshot()
    assert living_demo.load() == []
    assert living_demo.load_living() is False
    assert snapshot() == before


# --- the README's demo part ------------------------------------------------------------------

def _readme_table(first_column):
    """The rows of the README table whose first column is `first_column` (a code span)."""
    text = README.read_text(encoding="utf-8")
    return [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in text.splitlines() if re.match(rf"\|\s*`{first_column}`\s*\|", line)]


def _open_issuance(card):
    return db.session.execute(select(Issuance).where(
        Issuance.card_id == card.id).order_by(Issuance.id.desc())).unique().scalars().first()


def _pending(issuance):
    return issuance.receipt is not None and issuance.receipt.received_at is None


# The README's words for a state -> what must hold for the card (and its last issuance).
README_STATES = {
    "in stock (LOA2)": lambda card, issuance, today: (
        card.status == "in_stock" and card.loa == "LOA2" and card.expires_on > today
        and card.bound_person_id is None),
    "in stock, LOA3": lambda card, issuance, today: (
        card.status == "in_stock" and card.loa == "LOA3"),
    "in stock, past its own expiry": lambda card, issuance, today: (
        card.status == "in_stock" and card.expires_on < today),
    "awaiting approval": lambda card, issuance, today: issuance.status == "awaiting_approval",
    "approved, receipt due tomorrow": lambda card, issuance, today: (
        issuance.status == "approved" and _pending(issuance)
        and issuance.receipt_due == today + timedelta(days=1)),
    "blocked, receipt overdue": lambda card, issuance, today: (
        issuance.status == "blocked" and _pending(issuance) and issuance.receipt_due < today),
    "expired, not returned": lambda card, issuance, today: (
        issuance.status == "expired" and card.status == "issued"),
    "returned, to restock": lambda card, issuance, today: (
        issuance.status == "returned" and card.status == "returned"),
    "prepared for registered mail": lambda card, issuance, today: (
        issuance.status == "prepared" and issuance.channel == "registered_mail"),
    "sent by registered mail": lambda card, issuance, today: issuance.status == "sent",
}


def test_the_readme_serials_are_in_the_state_it_says(living_demo):
    rows = _readme_table(r"\d{16}")
    assert len(rows) >= 8
    today = clock.today()
    for serial, state, *_ in rows:
        serial = serial.strip("`")
        assert state in README_STATES, f"README state {state!r} has no check here"
        card = db.session.execute(select(ReserveCard).where(
            ReserveCard.serial == serial)).unique().scalar_one_or_none()
        assert card is not None, serial
        assert README_STATES[state](card, _open_issuance(card), today), (serial, state)


def test_the_readme_logins_sign_in_with_their_roles(living_demo, app, login):
    rows = _readme_table(r"[a-z][a-z0-9]*")
    assert {row[1] for row in rows} == {"Admin", "Servicecenter", "Televäxeln",
                                        "Korthandläggare", "Chef", "Intygsgivare"}
    assert f"`{DEMO_PASSWORD}`" in README.read_text(encoding="utf-8")
    for username, role, *_ in rows:
        username = username.strip("`")
        user = app.appbuilder.sm.find_user(username=username)
        assert role in {r.name for r in user.roles}, username
        login(username)  # signs in with the demo password


def test_make_run_first_start_loads_the_living_region_once(tmp_path):
    """The commands `make run` runs on a fresh machine (migrate, init, demo), twice: the first
    loads the base and the living region, the second changes nothing."""
    import os
    import sqlite3
    import subprocess
    import sys

    path = tmp_path / "first.db"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{path}",
           "RESERVKORT_INSTANCE": str(tmp_path / "instance"), "REDIS_URL": "",
           "RESERVKORT_EMBEDDED": "1"}
    env.pop("RESERVKORT_CONFIG", None)

    def flask(*args):
        run = subprocess.run([sys.executable, "-m", "flask", "--app", "app:create_app", *args],
                             cwd=README.parent, env=env, capture_output=True, text=True,
                             timeout=300)
        assert run.returncode == 0, run.stderr
        return run.stdout

    def state():
        with sqlite3.connect(path) as sql:
            return (sql.execute("SELECT status, count(*) FROM issuances GROUP BY status"
                                ).fetchall(),
                    sql.execute("SELECT count(*) FROM audit_events").fetchone())

    flask("db", "upgrade")
    flask("reservkort", "init")
    assert "servicecenter" in flask("reservkort", "demo")
    first = state()
    assert {status for status, _ in first[0]} == set(ISSUANCE_STATUSES)
    assert "already" in flask("reservkort", "demo")
    assert state() == first
