"""The foundation: migrations, database invariants, roles and menus, the audit chain, the
operations commands and field validation."""

import uuid
from datetime import date, datetime

import pytest
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.exc import IntegrityError

from app import validation
from app.extensions import db
from app.roles import MENU, ROLES
from config import TestConfig
from models import AuditEvent, Issuance, Person, ReserveCard
from tests.conftest import PG_URL, _pg_admin

DOMAIN_TABLES = {
    "units", "organisation_types", "people", "account_links", "unit_managers", "pickup_points",
    "reserve_cards", "issuances", "issuance_attesters", "extensions", "receipts", "deviations",
    "deviation_notes", "kobe_register", "outbox", "audit_events", "sweep_runs", "ab_user",
}


@pytest.fixture
def empty_database_url(dialect, tmp_path):
    if dialect == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    name = f"rk_empty_{uuid.uuid4().hex[:10]}"
    admin = _pg_admin()
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    yield PG_URL.format(name=name)
    admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _tables(url):
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.both_databases
def test_upgrade_downgrade_base_and_upgrade_again(empty_database_url, tmp_path):
    from flask_migrate import downgrade, upgrade

    from app import create_app

    flask_app = create_app(TestConfig, SQLALCHEMY_DATABASE_URI=empty_database_url,
                           INSTANCE_DIR=str(tmp_path), MAIL_DIR=str(tmp_path / "m"),
                           UPLOAD_DIR=str(tmp_path / "u"))
    with flask_app.app_context():
        upgrade()
        assert DOMAIN_TABLES <= _tables(empty_database_url)
        downgrade(revision="base")
        assert _tables(empty_database_url) <= {"alembic_version"}
        upgrade()
        assert DOMAIN_TABLES <= _tables(empty_database_url)
        db.session.remove()
        db.engine.dispose()


def _issuance(card, person, status="awaiting_approval"):
    return Issuance(channel="in_person", status=status, card_id=card.id, recipient_id=person.id,
                    reason="forgotten", created_at=datetime(2026, 11, 1), original_days=10,
                    valid_until=date(2026, 11, 11))


@pytest.mark.both_databases
def test_database_refuses_second_open_issuance_for_person(session, demo_person):
    anna = demo_person("Anna")
    cards = session.execute(select(ReserveCard).limit(2)).scalars().all()
    session.add(_issuance(cards[0], anna))
    session.commit()
    session.add(_issuance(cards[1], anna))
    with pytest.raises(IntegrityError):
        session.commit()
    session.rollback()
    # A returned one does not count: the person may get a new card.
    first = session.execute(select(Issuance)).scalar_one()
    first.status = "returned"
    session.commit()
    session.add(_issuance(cards[1], anna))
    session.commit()


@pytest.mark.both_databases
def test_database_refuses_second_open_issuance_for_card(session, demo_person):
    card = session.execute(select(ReserveCard).limit(1)).scalar_one()
    session.add(_issuance(card, demo_person("Anna")))
    session.commit()
    # Rejected is closed for the person but the card is still out until it is returned.
    session.add(_issuance(card, demo_person("Björn"), status="rejected"))
    with pytest.raises(IntegrityError):
        session.commit()
    session.rollback()


@pytest.mark.both_databases
def test_database_refuses_unknown_status_word(session, demo_person):
    card = session.execute(select(ReserveCard).limit(1)).scalar_one()
    session.add(_issuance(card, demo_person("Anna"), status="lent"))
    with pytest.raises(IntegrityError):
        session.commit()
    session.rollback()


def test_anonymous_request_is_sent_to_login(client):
    response = client.get("/api/v1/menu/")
    assert response.status_code == 401
    response = client.get("/users/list/")
    assert response.status_code in (302, 303)
    assert "/login/" in response.headers["Location"]


def _menu_names(test_client):
    response = test_client.get("/api/v1/menu/")
    assert response.status_code == 200
    names = set()

    def walk(items):
        for item in items:
            if isinstance(item, str):  # a separator
                continue
            names.add(item["name"])
            walk(item.get("childs", []))

    walk(response.get_json()["result"])
    return names


def _allowed_menus(role):
    names = set()
    for view_regex, perm_regex in ROLES[role]:
        if perm_regex == "^menu_access$":
            names |= {name for name in MENU.values() if f"|{name}|" in
                      "|" + view_regex.strip("^$()") + "|"}
    return names


@pytest.mark.parametrize("role", sorted(ROLES))
def test_each_role_sees_its_own_menu_and_nothing_else(login, role):
    seen = _menu_names(login(role))
    allowed = _allowed_menus(role)
    assert seen <= allowed, f"{role} sees menus outside its role: {seen - allowed}"
    assert "Security" not in seen and "List Users" not in seen


def test_admin_sees_security_menu(login):
    assert "List Users" in _menu_names(login("Admin"))


def test_audit_verify_passes_on_clean_log(runner):
    result = runner.invoke(args=["reservkort", "audit-verify"])
    assert result.exit_code == 0, result.output
    assert "intact" in result.output


def test_audit_verify_names_altered_row(runner, session):
    rows = session.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars().all()
    assert len(rows) >= 3
    target = rows[1].id
    session.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE id = :id"),
                    {"id": target})
    session.commit()
    result = runner.invoke(args=["reservkort", "audit-verify"])
    assert result.exit_code == 1
    assert f"row {target}" in result.output


def test_audit_verify_names_row_after_a_deleted_one(runner, session):
    rows = session.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars().all()
    deleted, following = rows[1].id, rows[2].id
    session.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": deleted})
    session.commit()
    result = runner.invoke(args=["reservkort", "audit-verify"])
    assert result.exit_code == 1
    assert f"row {following}" in result.output


def test_create_user_links_login_to_person(runner, session, app):
    hsa = "SE2321000131-E000000000004"
    result = runner.invoke(args=["reservkort", "create-user", "--username", "ddahl",
                                 "--password", "Ett-langt-losen-1", "--role", "Intygsgivare",
                                 "--hsa-id", hsa])
    assert result.exit_code == 0, result.output
    user = app.appbuilder.sm.find_user(username="ddahl")
    from app.security import person_for_user

    assert person_for_user(user).hsa_id == hsa
    assert {r.name for r in user.roles} == {"Intygsgivare"}


def test_create_user_refuses_unknown_role_and_person(runner):
    result = runner.invoke(args=["reservkort", "create-user", "--username", "x", "--password",
                                 "Ett-langt-losen-1", "--role", "Kung"])
    assert result.exit_code != 0 and "Kung" in result.output
    result = runner.invoke(args=["reservkort", "create-user", "--username", "y", "--password",
                                 "Ett-langt-losen-1", "--role", "Chef",
                                 "--hsa-id", "SE2321000131-E999"])
    assert result.exit_code != 0 and "not found" in result.output


def test_demo_is_idempotent(runner, session):
    people = session.execute(select(db.func.count(Person.id))).scalar()
    result = runner.invoke(args=["reservkort", "demo"])
    assert result.exit_code == 0
    assert "already" in result.output
    assert session.execute(select(db.func.count(Person.id))).scalar() == people


@pytest.mark.parametrize(
    "check, value, field",
    [
        (validation.card_serial, "12AB", "serial"),
        (validation.card_serial, "123", "serial"),
        (validation.hsa_id, "E000000000001", "hsa_id"),
        (validation.hsa_id, "SE2321000131E0001", "hsa_id"),
        (validation.personal_number, "19800101-1230", "personal_number"),
        (validation.personal_number, "19801301-1234", "personal_number"),
    ],
)
def test_malformed_identifiers_are_refused_naming_the_field(app, check, value, field):
    with pytest.raises(validation.FieldError) as refused:
        check(value)
    assert refused.value.field == field
    assert refused.value.as_dict()["errors"][field]


@pytest.mark.parametrize(
    "check, value, normalised",
    [
        (validation.card_serial, " 9752 2700 0000 0001 ", "9752270000000001"),
        (validation.hsa_id, "se2321000131-e000000000001", "SE2321000131-E000000000001"),
        (validation.personal_number, "800101-1231", "198001011231"),
        (validation.personal_number, "19800101-1231", "198001011231"),
    ],
)
def test_wellformed_identifiers_are_normalised(app, check, value, normalised):
    assert check(value) == normalised


def test_app_imports_no_views_module_but_the_factorys_registration():
    """`app/` must not import `views/` (the rooms' rule); only the app factory registers them."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "app"
    found = []
    for path in sorted(root.rglob("*.py")):
        if path == root / "__init__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.relative_to(root)}: {name}" for name in names
                      if name == "views" or name.startswith("views.")]
    assert not found
