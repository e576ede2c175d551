"""The benchmark at a tiny scale on PostgreSQL: the fill writes every planned row and keeps the
open-issuance invariants, and each measurement runs; a second sweep at the same time changes
nothing. No timing is asserted: timings belong to `python -m bench`, run by hand."""

import sys

import pytest
from sqlalchemy import text
from stdnum.se import personnummer

from app.extensions import db
from bench import django_admin, measure
from bench.concurrency import doubles
from bench.fill import FILLED_TABLES, Sizes, fill, personal_number

pytestmark = pytest.mark.postgresql_only

TINY = Sizes.at(0.0002)  # 200 people, 200 issuances


def _counts():
    return {table: db.session.execute(text(f"SELECT count(*) FROM {table}")).scalar()
            for table in FILLED_TABLES}


@pytest.fixture
def filled(app, monkeypatch):
    monkeypatch.setattr(measure, "REPEAT", 1)
    before = _counts()
    # Foreign-key triggers stay on here, so a dangling reference in the data fails the load.
    written = fill(TINY, fast=False)
    db.session.remove()
    return before, written


def test_fill_writes_every_planned_row(filled):
    before, written = filled
    assert written["people"] == TINY.people == 200
    assert written["issuances"] == TINY.issuances
    assert written["reserve_cards"] == TINY.cards
    assert written["receipts"] == TINY.issuances
    assert written["issuance_attesters"] > TINY.issuances
    assert written["deviations"] > 0
    after = _counts()
    assert {table: after[table] - before[table] for table in FILLED_TABLES} == written
    assert doubles() == (0, 0)
    statuses = set(db.session.execute(text("SELECT DISTINCT status FROM issuances")).scalars())
    assert {"returned", "awaiting_approval", "approved", "expired"} <= statuses


def test_generated_personal_numbers_are_valid():
    numbers = [personal_number(n) for n in (0, 1, 19_999, 20_000, 999_999)]
    assert len(set(numbers)) == len(numbers)
    assert all(len(number) == 12 and personnummer.is_valid(number) for number in numbers)


def test_measurements_run_and_the_second_sweep_changes_nothing(app, filled):
    engine = db.engine
    rows = (measure.approval_queue(app, engine) + measure.issuance_list(app, engine)
            + measure.screens(app, engine)
            + measure.statements_per_page(app, engine) + measure.deviation_export(app, engine))
    assert rows and not [row for row in rows if row.value.startswith("error")]
    assert all(row.ok == "yes" for row in rows if "statements" in row.figure), [
        (row.figure, row.value) for row in rows if "statements" in row.figure]
    first, second, plans = measure.sweeps(app, engine)
    assert first.figure.startswith("sweep, first")
    assert second.value.endswith(" 0 changes")
    assert plans.figure.startswith("sweep queries") and not plans.value.startswith("error")


def test_screen_lists_are_compared_with_django_admin(app, filled):
    rows = django_admin.compare(app, db.engine)
    figures = [row.figure for row in rows]
    assert figures and all(figure.endswith(" vs Django admin") for figure in figures)
    assert {figure.split(" page ")[0] for figure in figures} == {
        "issuance list", "deviation list", "people list"}
    assert [(row.figure, row.value) for row in rows if not row.value.endswith(" ms")] == []
    # Django admin's page was read (the number of rows it shows is checked in the run).
    assert all(row.floor.startswith("Django admin ") and row.ratio.endswith("×")
               and row.ok in ("yes", "NO") for row in rows)


def test_without_django_the_comparison_rows_say_so(app, filled, monkeypatch):
    monkeypatch.setitem(sys.modules, "django", None)  # `import django` fails
    rows = django_admin.compare(app, db.engine)
    assert rows and all(row.value.startswith("error: Django is not installed") for row in rows)


def test_the_password_bound_checks_the_stored_hash(app, monkeypatch):
    """The throughput's floor checks the bench login's real hash, one process per CPU: a
    wrong password or another method would make it count nothing or the wrong work."""
    from bench import concurrency

    monkeypatch.setattr(concurrency, "BOUND_SECONDS", 0.5)
    hashed = db.session.execute(text(
        "SELECT password FROM ab_user WHERE username = 'intygsgivare1'")).scalar_one()
    assert concurrency.password_hash("intygsgivare1") == hashed
    assert concurrency.checks_within(hashed, 0.3) >= 1
    assert concurrency.password_bound(hashed) > 0
    with pytest.raises(ValueError):
        concurrency.checks_within(hashed.replace("$", "$x", 1), 0.1)
