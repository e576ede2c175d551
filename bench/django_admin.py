"""The screen lists beside Django admin on the same database (issue 15: "the screen lists at
least twice as fast as Django admin would be on the same data").

Each row is one page of a list screen, measured through Flask's test client logged in as
Servicecenter, and the same page of a Django admin changelist (bench/django_site: unmanaged
models on the same tables, the same columns, order, filters and page size) through Django's
test client logged in as a superuser. Both are the median of 5 runs after a warm-up
(measure.median_time), one after the other, so they see the same machine.
"""

import math
from dataclasses import dataclass

from sqlalchemy import text

from app.extensions import db
from bench import measure
from bench.measure import Row, Screen, ms, yes

TARGET = 2.0
DEEP_PAGE = 1000


@dataclass
class Page:
    figure: str
    ours: str  # the screen's URL
    django: str  # the changelist's URL
    rows: int  # rows on the page


@dataclass
class ListScreen:
    name: str  # "issuance list"
    screen: str  # the screen's list URL
    view: str  # FAB's view name (its page argument is page_<view>, counted from 0)
    model: str  # the changelist's model
    page_size: int
    table: str
    filters: list  # (label, screen arguments, changelist arguments, SQL condition)


def _lists(unit) -> list[ListScreen]:
    return [
        ListScreen("issuance list", "/issuances/list/", "IssuanceView", "issuance", 25,
                   "issuances", [("", "", "", "true"),
                                 ("status=returned", "_flt_0_status=returned",
                                  "status__exact=returned", "status = 'returned'")]),
        ListScreen("deviation list", "/deviations/list/", "DeviationView", "deviation", 50,
                   "deviations", [("", "", "", "true"),
                                  ("one unit", f"_flt_0_unit={unit}", f"unit__id__exact={unit}",
                                   f"unit_id = {unit}")]),
        ListScreen("people list", "/registers/people/list/", "PersonView", "person", 25,
                   "people", [("", "", "", "true")]),
    ]


# The pages our screen rows measure (bench/measure.py): every list's page 1 and page 1000,
# unfiltered; with the filter page 1, and the issuances' page 1000 too.
DEEP_FILTERED = {"issuance list"}


def _url(path, *arguments) -> str:
    query = "&".join(argument for argument in arguments if argument)
    return f"{path}?{query}" if query else path


def _rows(flask_app, table, condition) -> int:
    with flask_app.app_context():
        count = db.session.execute(
            text(f"SELECT count(*) FROM {table} WHERE {condition}")).scalar()
        db.session.remove()
    return count


def pages(flask_app) -> list[Page]:
    """The pages to compare: page 1, and page 1000 or the last page of a smaller database
    (the rows counted first, untimed)."""
    found = []
    for screen in _lists(measure.busiest_unit(flask_app) or 0):
        for label, ours, django, condition in screen.filters:
            total = _rows(flask_app, screen.table, condition)
            last = max(1, math.ceil(total / screen.page_size))
            numbers = [1]
            if not label or screen.name in DEEP_FILTERED:
                numbers.append(min(DEEP_PAGE, last))
            for number in numbers:
                deep = number > 1
                shown = f" ({label})" if label else ""
                found.append(Page(
                    f"{screen.name} page {number}{shown} vs Django admin",
                    _url(screen.screen, ours, f"page_{screen.view}={number - 1}" if deep else ""),
                    _url(f"/admin/django_site/{screen.model}/", django,
                         f"p={number}" if deep else ""),
                    min(screen.page_size, total - (number - 1) * screen.page_size)))
    return found


def _django_get(client, url) -> str:
    answer = client.get(url)
    if answer.status_code != 200:
        raise RuntimeError(f"Django admin GET {url}: HTTP {answer.status_code}")
    return answer.content.decode()


def _result_rows(html) -> int:
    """Rows in the changelist's result table (a check that the page is the page asked for)."""
    table = html.split('id="result_list"', 1)[-1].split("</table>", 1)[0]
    return table.count("<tr") - 1 if 'id="result_list"' in html else 0


def compare_row(page, screen, client, django_statements) -> Row:
    screen.get(page.ours)
    ours = measure.median_time(lambda: screen.get(page.ours))
    shown = _result_rows(_django_get(client, page.django))
    if shown != page.rows:
        raise RuntimeError(f"Django admin shows {shown} rows, not {page.rows}: {page.django}")
    django = measure.median_time(lambda: _django_get(client, page.django))
    statements = django_statements(lambda: _django_get(client, page.django))
    ratio = django / ours if ours else float("inf")
    return Row(page.figure, ms(ours), f"Django admin {ms(django)} ({statements} statements)",
               f"{ratio:.2f}×", f"Django ≥ {TARGET:g}× ours", yes(ratio >= TARGET))


def compare(flask_app, engine) -> list[Row]:
    """One row per page: the screen's time, Django admin's, and Django / ours."""
    found = pages(flask_app)
    try:
        import django  # noqa: F401  (a bench tool: requirements-dev.txt)
    except ImportError:
        return [Row(page.figure, "error: Django is not installed "
                    "(pip install -r requirements-dev.txt)") for page in found]
    from bench import django_site

    client = django_site.admin_client(engine.url.render_as_string(hide_password=False))
    try:
        screen = Screen(flask_app, "servicecenter")
        rows = []
        for page in found:
            try:
                rows.append(compare_row(page, screen, client, django_site.statements))
            except Exception as exc:  # one failing page must not hide the others
                rows.append(Row(page.figure, f"error: {exc}".replace("\n", " ")[:300]))
        return rows
    finally:
        django_site.close()
