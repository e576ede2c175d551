"""The measurements: each returns rows of the result table (figure, value, floor, ratio, target,
ok?). A floor is the same SQL run on a plain database cursor, or the smallest document of the
same kind: the cost that no application code could avoid.

Requests go through Flask's test client outside any app context, so each request gets its own
app context and database session, as in the server.
"""

import io
import re
import statistics
import time
import tracemalloc
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import event, func, select, text

from app import clock
from app.extensions import db

DEMO_PASSWORD = "Reservkort-demo-2026"
RATIO_TARGET = 3.0
REPEAT = 5
SLOW_SECONDS = 2.0


@dataclass
class Row:
    figure: str
    value: str = ""
    floor: str = ""
    ratio: str = ""
    target: str = ""
    ok: str = ""


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def mib(size: float) -> str:
    return f"{size / 2**20:.1f} MiB"


def yes(flag: bool) -> str:
    return "yes" if flag else "NO"


def ratio_row(figure, value, floor, target=RATIO_TARGET) -> Row:
    ratio = value / floor if floor else float("inf")
    return Row(figure, ms(value), ms(floor), f"{ratio:.1f}×", f"≤ {target:g}× floor",
               yes(ratio <= target))


def median_time(run, repeat=None, warmup=1) -> float:
    """The median of `repeat` timed runs after a warm-up; one timed run when the warm-up
    already took seconds (the full-scale run must stay well under half an hour)."""
    repeat = repeat or REPEAT
    for _ in range(warmup):
        started = time.perf_counter()
        run()
        if time.perf_counter() - started > SLOW_SECONDS:
            repeat = 1
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


class Statements:
    """Every SQL statement the engine runs inside the `with` block."""

    def __init__(self, engine):
        self.engine = engine
        self.items = []

    def _seen(self, conn, cursor, statement, parameters, context, executemany):
        self.items.append((statement, parameters, executemany))

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._seen)

    @property
    def count(self) -> int:
        return len(self.items)

    def selects(self):
        return [(s, p) for s, p, many in self.items
                if not many and s.lstrip().upper().startswith(("SELECT", "WITH"))]


# The request's own statements, not the page's: the login's session generation, the user
# with its roles, FAB's public permissions (API). Every request of a signed-in user sends them,
# whatever it shows; the page's SQL is the rest.
LOGIN_TABLES = {"ab_user", "ab_permission_view", "session_generations"}


def is_login_statement(statement: str) -> bool:
    found = re.search(r"\bFROM\s+(\w+)", statement)
    return bool(found) and found.group(1) in LOGIN_TABLES


def split_login(statements) -> tuple[list, list]:
    """(the page's statements, the login's statements)."""
    page = [item for item in statements if not is_login_statement(item[0])]
    login = [item for item in statements if is_login_statement(item[0])]
    return page, login


def floor_time(engine, statements, repeat=None) -> float:
    """The same SELECTs on one plain DBAPI cursor, rows fetched, no ORM or web layer."""
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()

        def run():
            for statement, parameters in statements:
                cursor.execute(statement, parameters)
                cursor.fetchall()

        elapsed = median_time(run, repeat)
        connection.rollback()
        return elapsed
    finally:
        connection.close()


class Api:
    """A test client with a JWT for one login."""

    def __init__(self, flask_app, username, password=DEMO_PASSWORD):
        self.client = flask_app.test_client()
        answer = self.client.post("/api/v1/security/login", json={
            "username": username, "password": password, "provider": "db", "refresh": True})
        if answer.status_code != 200:
            raise RuntimeError(f"login of {username}: HTTP {answer.status_code}")
        self.headers = {"Authorization": f"Bearer {answer.get_json()['access_token']}"}

    def get_json(self, url):
        answer = self.client.get(url, headers=self.headers)
        if answer.status_code != 200:
            raise RuntimeError(f"GET {url}: HTTP {answer.status_code} {answer.get_data()[:200]}")
        return answer.get_json()

    def download(self, url) -> tuple[int, int]:
        """Read a streamed file chunk by chunk, keeping none: (bytes, newlines)."""
        answer = self.client.get(url, headers=self.headers, buffered=False)
        size = lines = 0
        try:
            if answer.status_code != 200:
                raise RuntimeError(f"GET {url}: HTTP {answer.status_code}")
            for chunk in answer.response:
                chunk = chunk.encode() if isinstance(chunk, str) else chunk
                size += len(chunk)
                lines += chunk.count(b"\n")
            return size, lines
        finally:
            answer.close()


class Screen:
    """A test client logged in to the screens (the login form, with its CSRF token)."""

    def __init__(self, flask_app, username, password=DEMO_PASSWORD):
        self.client = flask_app.test_client()
        form = self.client.get("/login/").get_data(as_text=True)
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form)
        answer = self.client.post("/login/", data={
            "username": username, "password": password,
            "csrf_token": token.group(1) if token else ""})
        if answer.status_code not in (302, 303):
            raise RuntimeError(f"screen login of {username}: HTTP {answer.status_code}")

    def get(self, url) -> str:
        answer = self.client.get(url)
        if answer.status_code != 200:
            raise RuntimeError(f"GET {url}: HTTP {answer.status_code}")
        return answer.get_data(as_text=True)


# --- the approval queue ---------------------------------------------------------------------

def _approval_page(page_size=25):
    """What the approval screen asks: the count and one page, with what each row shows."""
    from app.access import person_label
    from app.workflow import queries

    db.session.remove()
    queue = queries.approval_queue()
    count = db.session.execute(select(func.count()).select_from(queue.subquery())).scalar()
    rows = db.session.execute(queue.limit(page_size)).unique().scalars().all()
    for issuance in rows:  # what the queue's template shows of each row
        (issuance.card.serial, issuance.card.loa, person_label(issuance.recipient),
         [person_label(link.person) for link in issuance.attesters])
    db.session.remove()  # as a request ends
    return count, rows


def approval_queue(flask_app, engine) -> list[Row]:
    with flask_app.app_context():
        count, rows = _approval_page()
        if not rows:
            raise RuntimeError("the approval queue is empty")
        value = median_time(_approval_page)
        with Statements(engine) as page:
            _approval_page()
        with Statements(engine) as small:
            _approval_page(20)
        with Statements(engine) as large:
            _approval_page(100)
    floor = floor_time(engine, page.selects())
    return [
        ratio_row(f"approval queue page 1 (25 of {count}, ORM)", value, floor),
        Row("approval queue: statements at 20 / 100 rows", f"{small.count} / {large.count}",
            target="equal", ok=yes(small.count == large.count)),
    ]


# --- the issuance list through the API ------------------------------------------------------

def _page_1000_cursor(flask_app, page_size=20, **where) -> tuple[int, int]:
    """(page number, keyset cursor) of page 1000 of the filtered issuances, newest id first,
    or of the last full page of a smaller database: the id just before that page."""
    clauses = " AND ".join(f"{column} = :{column}" for column in where) or "true"
    with flask_app.app_context():
        total = db.session.execute(
            text(f"SELECT count(*) FROM issuances WHERE {clauses}"), where).scalar()
        page = max(0, min(999, total // page_size - 1))
        cursor = db.session.execute(text(
            f"SELECT id FROM issuances WHERE {clauses} ORDER BY id DESC OFFSET :skip LIMIT 1"),
            {**where, "skip": page * page_size - 1}).scalar() if page else None
        db.session.remove()
    return page, cursor


# The API's keyset floor: one page of issuances by index with what each answer holds (card,
# recipient, attesters with their person, extension, receipt), in one statement, no count.
API_FLOOR = (
    "SELECT i.*, c.*, p.*, e.*, r.received_at, (SELECT json_agg(json_build_object("
    "'position', a.position, 'authenticated_at', a.authenticated_at, 'name', ap.name, "
    "'hsa_id', ap.hsa_id, 'email', ap.email, 'personal_number', ap.personal_number)) "
    "FROM issuance_attesters a JOIN people ap ON ap.id = a.person_id "
    "WHERE a.issuance_id = i.id) AS attesters "
    "FROM issuances i JOIN reserve_cards c ON c.id = i.card_id "
    "JOIN people p ON p.id = i.recipient_id LEFT JOIN extensions e ON e.issuance_id = i.id "
    "LEFT JOIN receipts r ON r.issuance_id = i.id WHERE {where} ORDER BY i.id DESC LIMIT 20")


def issuance_list(flask_app, engine) -> list[Row]:
    api = Api(flask_app, "servicecenter")
    rows = []
    filtered = "/api/v1/issuances/?status=returned&channel=in_person&page_size=20"
    # Page 1000 (or the last full page of a smaller database) by its keyset cursor.
    page, cursor = _page_1000_cursor(flask_app, status="returned", channel="in_person")
    pages = (
        ("issuance API page 1", "/api/v1/issuances/?page=0&page_size=20"),
        (f"issuance API page {page + 1} by keyset (status=returned, in person)",
         f"{filtered}&after={cursor}" if cursor else f"{filtered}&page=0"),
    )
    floors = (
        ("true", 0),
        ("i.status = 'returned' AND i.channel = 'in_person'", cursor),
    )
    for (figure, url), (where, after) in zip(pages, floors, strict=True):
        try:
            answer = api.get_json(url)
            if len(answer["result"]) != 20:
                raise RuntimeError(f"{len(answer['result'])} rows on the page, not 20")
            value = median_time(lambda url=url: api.get_json(url))
            with Statements(engine) as seen:
                api.get_json(url)
            total = answer["count"] if answer.get("count_exact", True) \
                else f"more than {answer['count'] - 1}"
            floor = floor_time(engine, [(
                API_FLOOR.format(where=where + (" AND i.id < %(after)s" if after else "")),
                {"after": after})])
            sql, login = page_and_login_sql(engine, seen)
            rows.append(floor_row(f"{figure} of {total}", value, sql, floor, login=login))
        except Exception as exc:  # one failing page must not hide the other
            rows.append(Row(figure, f"error: {exc}"))
    return rows


def statements_per_page(flask_app, engine) -> list[Row]:
    api = Api(flask_app, "servicecenter")
    screen = Screen(flask_app, "servicecenter")
    lists = (
        ("issuance API: statements at 20 / 100 rows",
         "/api/v1/issuances/?page=0&page_size={size}", api.get_json),
        ("deviation API: statements at 20 / 100 rows",
         "/api/v1/deviations/?q=(page:0,page_size:{size})", api.get_json),
        ("people API: statements at 20 / 100 rows",
         "/api/v1/people/?q=(page:0,page_size:{size})", api.get_json),
        ("issuance list: statements at 20 / 100 rows",
         "/issuances/list/?psize_IssuanceView={size}", screen.get),
        ("deviation list: statements at 20 / 100 rows",
         "/deviations/list/?psize_DeviationView={size}", screen.get),
        ("people list: statements at 20 / 100 rows",
         "/registers/people/list/?psize_PersonView={size}", screen.get),
    )
    rows = []
    for figure, pattern, get in lists:
        try:
            counts = []
            for size in (20, 100):
                url = pattern.format(size=size)
                answer = get(url)
                if isinstance(answer, dict) and len(answer["result"]) != min(
                        size, answer["count"]):
                    raise RuntimeError(f"{len(answer['result'])} rows, not {size}")
                with Statements(engine) as seen:
                    get(url)
                counts.append(seen.count)
            rows.append(Row(figure, f"{counts[0]} / {counts[1]}", target="equal",
                            ok=yes(counts[0] == counts[1])))
        except Exception as exc:
            rows.append(Row(figure, f"error: {exc}"))
    return rows


# --- the screens: lists and the start page ----------------------------------------------------

START_PAGE_TARGET = 0.100


def _full_counts(statements) -> int:
    """count(...) statements without a LIMIT: each a scan of what the filter matches."""
    return sum(1 for statement, _ in statements
               if "count(" in statement.lower() and "limit" not in statement.lower())


def busiest_unit(flask_app) -> int | None:
    """The unit with most deviations: the filter the deviation list rows use."""
    with flask_app.app_context():
        unit = db.session.execute(text(
            "SELECT unit_id FROM deviations WHERE unit_id IS NOT NULL "
            "GROUP BY unit_id ORDER BY count(*) DESC LIMIT 1")).scalar()
        db.session.remove()
    return unit


# The keyset floors: one page's rows read by index with the relations the list shows, no count.
# {where} is the list's filter, {after} the keyset condition of a deep page. The people list is
# ordered by the name as a login without clearance sees it (a protected person's is the mask).
SHOWN_NAME = "CASE WHEN p.protected_identity IS true THEN 'Skyddad identitet' ELSE p.name END"
FLOORS = {
    "issuances": (
        "SELECT i.*, c.serial, c.loa, p.name, p.hsa_id FROM issuances i "
        "JOIN reserve_cards c ON c.id = i.card_id JOIN people p ON p.id = i.recipient_id "
        "WHERE {where} AND {after} ORDER BY i.created_at DESC, i.id DESC LIMIT %(size)s",
        "(i.created_at, i.id) < (%(k0)s, %(k1)s)",
        "SELECT i.created_at, i.id FROM issuances i WHERE {where} "
        "ORDER BY i.created_at DESC, i.id DESC OFFSET %(skip)s LIMIT 1"),
    "deviations": (
        "SELECT d.*, u.name, p.name, p.hsa_id FROM deviations d "
        "LEFT JOIN units u ON u.id = d.unit_id LEFT JOIN people p ON p.id = d.person_id "
        "WHERE {where} AND {after} ORDER BY d.created_at DESC, d.id DESC LIMIT %(size)s",
        "(d.created_at, d.id) < (%(k0)s, %(k1)s)",
        "SELECT d.created_at, d.id FROM deviations d WHERE {where} "
        "ORDER BY d.created_at DESC, d.id DESC OFFSET %(skip)s LIMIT 1"),
    "people": (
        f"SELECT p.*, u.name FROM people p LEFT JOIN units u ON u.id = p.unit_id "
        f"WHERE {{where}} AND {{after}} ORDER BY {SHOWN_NAME}, p.id LIMIT %(size)s",
        f"({SHOWN_NAME}, p.id) > (%(k0)s, %(k1)s)",
        f"SELECT {SHOWN_NAME}, p.id FROM people p WHERE {{where}} "
        f"ORDER BY {SHOWN_NAME}, p.id OFFSET %(skip)s LIMIT 1"),
}
DEEP_PAGE = 999  # page 1000, counted from 0 as FAB's page_<View>


def _one(engine, statement, params):
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute(statement, params)
        found = cursor.fetchone()
        connection.rollback()
        return found
    finally:
        connection.close()


def deep_page(engine, table, where, page_size) -> int:
    """Page 1000 of the list, or its last full page on a smaller database (numbered from 0)."""
    total = _one(engine, f"SELECT count(*) FROM {table} {table[0]} WHERE {where}", {})[0]
    return max(0, min(DEEP_PAGE, total // page_size - 1))


def cursor_before(engine, table, where, page, page_size):
    """The order's values (key, id) of the row just before `page`: the cursor that following
    the pager's "next" link from page 1 arrives at page `page` with. None for the first page."""
    if not page:
        return None
    _rows, _after, cursor_sql = FLOORS[table]
    return _one(engine, cursor_sql.format(where=where), {"skip": page * page_size - 1})


def keyset_floor(engine, table, where="true", page=0, page_size=25) -> float:
    """The time of one page's rows read by keyset (the cursor of a deep page looked up first,
    untimed)."""
    rows_sql, after_sql, _cursor = FLOORS[table]
    params, after = {"size": page_size}, "true"
    found = cursor_before(engine, table, where, page, page_size)
    if found:
        params.update(k0=found[0], k1=found[1])
        after = after_sql
    return floor_time(engine, [(rows_sql.format(where=where, after=after), params)])


def floor_row(figure, value, sql, floor, target=RATIO_TARGET, login=None) -> Row:
    """A page beside its keyset floor: the target is on the page's SQL. `login`: (time, number)
    of the request's login statements, shown apart and not in the page's SQL."""
    ratio = sql / floor if floor else float("inf")
    shown = f"SQL {ms(sql)}; keyset floor {ms(floor)}"
    if login is not None:
        shown += f"; login {ms(login[0])} ({login[1]} statements)"
    return Row(figure, ms(value), shown, f"{ratio:.1f}×", f"SQL ≤ {target:g}× floor",
               yes(ratio <= target))


def page_and_login_sql(engine, seen) -> tuple[float, tuple[float, int]]:
    """The page's SQL time, and the login statements' (time, number), each replayed apart."""
    page, login = split_login(seen.selects())
    return floor_time(engine, page), (floor_time(engine, login) if login else 0.0, len(login))


# The screen lists: (figure, first page's URL, view, table, SQL filter, page size).
SCREEN_LISTS = (
    ("issuance list", "/issuances/list/", "IssuanceView", "issuances", "true", 25),
    ("issuance list (status=returned)", "/issuances/list/?_flt_0_status=returned",
     "IssuanceView", "issuances", "i.status = 'returned'", 25),
    ("deviation list", "/deviations/list/", "DeviationView", "deviations", "true", 50),
    ("people list", "/registers/people/list/", "PersonView", "people", "true", 25),
)


def _with_args(url, **args) -> str:
    query = "&".join(f"{key}={value}" for key, value in args.items())
    return url + ("&" if "?" in url else "?") + query


def screen_pages(engine, unit) -> list[tuple]:
    """(figure, URL, (table, filter, page, page size), has a target) of every screen page
    measured: page 1; page 1000 reached by the pager's "next" links (its URL carries the
    cursor the 999th link carries: the id of the row just before it); and page 1000 asked
    for by number (`page_<View>=999`, an offset: read ids first), for information."""
    pages = []
    for figure, url, view, table, where, size in SCREEN_LISTS:
        pages.append((f"{figure} page 1", url, (table, where, 0, size), True))
        if table == "deviations":
            pages.append(("deviation list page 1 (one unit)",
                          f"/deviations/list/?_flt_0_unit={unit}",
                          ("deviations", f"d.unit_id = {unit}", 0, size), True))
        page = deep_page(engine, table, where, size)
        before = cursor_before(engine, table, where, page, size)
        if not before:
            continue
        label = figure.replace(" list", f" list page {page + 1}")
        pages.append((f"{label} by the next links",
                      _with_args(url, **{f"page_{view}": page, f"after_{view}": before[1]}),
                      (table, where, page, size), True))
        pages.append((f"{label} by number (offset)", _with_args(url, **{f"page_{view}": page}),
                      (table, where, page, size), False))
    return pages


def screen_row(engine, screen, figure, url, floor_args, targeted) -> Row:
    answer = screen.get(url)
    if not re.search(r"/show/\d+", answer):
        raise RuntimeError(f"no rows on {url}")
    value = median_time(lambda: screen.get(url))
    with Statements(engine) as seen:
        screen.get(url)
    sql, login = page_and_login_sql(engine, seen)
    floor = keyset_floor(engine, *floor_args)
    total = re.search(r"(Antal poster|Record Count):</strong>\s*([^<]+)<", answer)
    shown = f" (total shown: {total.group(2).strip()})" if total else ""
    row = floor_row(figure + shown, value, sql, floor, login=login)
    if not targeted:
        row.target = row.ok = ""
    full = _full_counts(seen.selects())
    if full:
        row.ok, row.target = "NO", (row.target + "; " if row.target else "") + \
            f"{full} unbounded count(*)"
    return row


def screens(flask_app, engine) -> list[Row]:
    """The screen lists, page 1 and a deep page, unfiltered and with a filter, and the start
    page: each page's time, the SQL it sent (replayed on a plain cursor; the login's statements
    apart) and its keyset floor."""
    screen = Screen(flask_app, "servicecenter")
    unit = int(busiest_unit(flask_app) or 0)
    rows = []
    for figure, url, floor_args, targeted in screen_pages(engine, unit):
        try:
            rows.append(screen_row(engine, screen, figure, url, floor_args, targeted))
        except Exception as exc:
            rows.append(Row(figure, f"error: {exc}"))
    options = len(re.findall(r"<option value=\\?\"\d+", screen.get("/deviations/list/")))
    rows.append(Row("deviation list: unit choices in the page", f"{options}",
                    target="looked up as you type (≤ 1)", ok=yes(options <= 1)))
    for login in ("servicecenter", "admin", "chef"):
        try:
            home = Screen(flask_app, login)
            home.get("/")
            value = median_time(lambda home=home: home.get("/"))
            with Statements(engine) as seen:
                home.get("/")
            floor = floor_time(engine, seen.selects())
            rows.append(Row(f"start page ({login})", ms(value), f"SQL {ms(floor)}",
                            f"{value / floor:.1f}×" if floor else "", "≤ 100 ms",
                            yes(value <= START_PAGE_TARGET)))
        except Exception as exc:
            rows.append(Row(f"start page ({login})", f"error: {exc}"))
    return rows


# --- the sweeps -------------------------------------------------------------------------------

SWEEP_FIRST_TARGET = 5.0
SWEEP_SECOND_TARGET = 0.5
LARGE_ROWS = 100_000
LARGE_TABLES = ("issuances", "receipts", "deviations", "people", "reserve_cards",
                "kobe_register", "issuance_attesters", "audit_events", "outbox")


def _sequential_scans(engine, statements) -> list[str]:
    """The large tables (over LARGE_ROWS rows) the planner would read whole for these
    statements (EXPLAIN only, nothing is run again). A small table read whole is the
    planner's right choice, not a missing index."""
    connection = engine.raw_connection()
    found = []
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT relname FROM pg_class WHERE relkind = 'r' AND reltuples > %s",
                       (LARGE_ROWS,))
        large = {name for (name,) in cursor.fetchall()} & set(LARGE_TABLES)
        for statement, parameters, many in statements:
            if many or not statement.lstrip().upper().startswith(
                    ("SELECT", "UPDATE", "INSERT", "WITH")):
                continue
            if "pg_advisory" in statement:
                continue
            cursor.execute("EXPLAIN " + statement, parameters)
            plan = "\n".join(line for (line,) in cursor.fetchall())
            found += [table for table in large if f"Seq Scan on {table} " in plan + " "]
        connection.rollback()
    finally:
        connection.close()
    return found


def sweeps(flask_app, engine) -> list[Row]:
    from app.workflow import sweeps as workflow_sweeps

    now = clock.now()
    rows = []
    with flask_app.app_context():
        for run in ("first", "second"):
            with Statements(engine) as seen:
                started = time.perf_counter()
                result = workflow_sweeps.run_all(now, trigger="bench")
                elapsed = time.perf_counter() - started
            if run == "first":
                first_statements = list(seen.items)
            changed = sum(result.values())
            detail = ", ".join(f"{name} {n}" for name, n in result.items() if n)
            figure = f"sweep, {run} run at the same time ({seen.count} statements)"
            if run == "first":
                rows.append(Row(figure, f"{elapsed:.2f} s, {changed} changes",
                                floor=detail or "nothing due", target="≤ 5 s",
                                ok=yes(elapsed <= SWEEP_FIRST_TARGET)))
            else:
                rows.append(Row(figure, f"{elapsed:.2f} s, {changed} changes",
                                target="≤ 0.5 s, 0 changes",
                                ok=yes(changed == 0 and elapsed <= SWEEP_SECOND_TARGET)))
        db.session.remove()
    scans = _sequential_scans(engine, first_statements)
    rows.append(Row("sweep queries read by an index (EXPLAIN)",
                    f"{len(scans)} sequential scans" + (f": {', '.join(sorted(set(scans)))}"
                                                        if scans else ""),
                    target="0", ok=yes(not scans)))
    return rows


# --- the deviation export -------------------------------------------------------------------

def _from_date_for(flask_app, share) -> str | None:
    """The report's `from` date that gives about this share of the newest deviations."""
    with flask_app.app_context():
        total = db.session.execute(text("SELECT count(*) FROM deviations")).scalar()
        moment = db.session.execute(
            text("SELECT created_at FROM deviations ORDER BY created_at DESC "
                 "OFFSET :skip LIMIT 1"), {"skip": max(0, round(total * share) - 1)}
        ).scalar()
        db.session.remove()
    return clock.to_local(moment).date().isoformat() if moment else None


def _peak_memory(run) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# The targets for a big export's job time (the job runs this same writer).
EXPORT_SECONDS_PER_100K = {"csv": 3, "xlsx": 12}


def deviation_export(flask_app, engine) -> list[Row]:
    # The writer itself, streamed at every size: a big export's job runs the same writer.
    flask_app.config["EXPORT_STREAM_MAX_ROWS"] = 10**9
    api = Api(flask_app, "servicecenter")
    sizes = [("all", None)]
    small_from = _from_date_for(flask_app, 0.1)
    if small_from:
        sizes.insert(0, ("newest 10 %", small_from))
    rows, peaks = [], {}
    for label, day in sizes:
        for kind in ("csv", "xlsx"):
            url = f"/api/v1/reports/deviations?format={kind}" + (f"&from={day}" if day else "")
            figure = f"deviation export {kind.upper()}, {label}"
            try:
                started = time.perf_counter()
                size, lines = api.download(url)
                elapsed = time.perf_counter() - started
                count = lines - 1 if kind == "csv" else None
                with Statements(engine) as seen:
                    peak = _peak_memory(lambda url=url: api.download(url))
                floor = floor_time(engine, seen.selects(), repeat=1)
                peaks[(label, kind)] = peak
                if count is not None:
                    peaks[(label, "rows")] = count
                rows_text = peaks.get((label, "rows"), "?")
                row = Row(f"{figure} ({rows_text} rows, {size // 1024} KiB)",
                          f"{elapsed:.2f} s, peak {mib(peak)}", f"SQL {elapsed_text(floor)}",
                          f"{elapsed / floor:.1f}×" if floor else "")
                if label == "all" and isinstance(rows_text, int):
                    allowed = EXPORT_SECONDS_PER_100K[kind] * rows_text / 100_000
                    row.target = (f"≤ {EXPORT_SECONDS_PER_100K[kind]} s per 100 000 rows "
                                  f"({allowed:.1f} s)")
                    row.ok = yes(elapsed <= allowed)
                rows.append(row)
            except Exception as exc:
                rows.append(Row(figure, f"error: {exc}"))
    for kind in ("csv", "xlsx"):
        small, large = peaks.get(("newest 10 %", kind)), peaks.get(("all", kind))
        if small and large:
            rows.append(Row(f"deviation export {kind.upper()}: peak memory, all / newest 10 %",
                            f"{large / small:.2f}×", target="≤ 2× (flat)",
                            ok=yes(large <= 2 * small)))
    return rows


def elapsed_text(seconds: float) -> str:
    return ms(seconds) if seconds < 1 else f"{seconds:.2f} s"


# --- the receipt PDF ------------------------------------------------------------------------

def receipt_pdf(flask_app, engine) -> list[Row]:
    from xhtml2pdf import pisa

    from app import pdf
    from models import Issuance

    with flask_app.test_request_context():
        issuance = db.session.execute(
            select(Issuance).where(Issuance.status == "awaiting_approval")
            .order_by(Issuance.id.desc()).limit(1)
        ).unique().scalar_one()
        document = pdf.render_receipt(issuance)
        if not document.startswith(b"%PDF"):
            raise RuntimeError("the receipt is not a PDF")
        value = median_time(lambda: pdf.render_receipt(issuance))
        db.session.remove()

    def one_line():
        pisa.CreatePDF("<p>Kvittens</p>", dest=io.BytesIO(), encoding="utf-8")

    floor = median_time(one_line)
    ratio = value / floor
    return [Row(f"receipt PDF ({len(document) // 1024} KiB)", ms(value), ms(floor),
                f"{ratio:.1f}×", "≤ 1 s per receipt", yes(value <= 1.0))]


def started_at() -> str:
    return datetime.now().isoformat(timespec="seconds")
