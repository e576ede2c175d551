"""The measurements: each returns rows of the result table (figure, value, floor, ratio, target,
ok?). A floor is the same SQL run on a plain database cursor, or the smallest document of the
same kind: the cost that no application code could avoid.

Requests go through Flask's test client outside any app context, so each request gets its own
app context and database session, as in the server.
"""

import io
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


# --- the approval queue ---------------------------------------------------------------------

def _approval_page(page_size=25):
    """What the approval screen asks: the count and one page, with what each row shows."""
    from app.workflow import queries

    db.session.remove()
    queue = queries.approval_queue()
    count = db.session.execute(select(func.count()).select_from(queue.subquery())).scalar()
    rows = db.session.execute(queue.limit(page_size)).unique().scalars().all()
    for issuance in rows:
        (issuance.card.serial, issuance.recipient.name, issuance.recipient.unit,
         [link.person.name for link in issuance.attesters])
    db.session.rollback()
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

def issuance_list(flask_app, engine) -> list[Row]:
    api = Api(flask_app, "servicecenter")
    rows = []
    filtered = "/api/v1/issuances/?status=returned&channel=in_person&page_size=20"
    # Page 1000, or the last full page of a smaller database.
    page = min(999, api.get_json(filtered + "&page=0")["count"] // 20 - 1)
    pages = (
        ("issuance API page 1", "/api/v1/issuances/?page=0&page_size=20"),
        (f"issuance API page {page + 1} (status=returned, in person)",
         f"{filtered}&page={page}"),
    )
    for figure, url in pages:
        try:
            answer = api.get_json(url)
            if len(answer["result"]) != 20:
                raise RuntimeError(f"{len(answer['result'])} rows on the page, not 20")
            value = median_time(lambda url=url: api.get_json(url))
            with Statements(engine) as seen:
                api.get_json(url)
            rows.append(ratio_row(f"{figure} of {answer['count']}", value,
                                  floor_time(engine, seen.selects())))
        except Exception as exc:  # one failing page must not hide the other
            rows.append(Row(figure, f"error: {exc}"))
    return rows


def statements_per_page(flask_app, engine) -> list[Row]:
    api = Api(flask_app, "servicecenter")
    lists = (
        ("issuance API: statements at 20 / 100 rows",
         "/api/v1/issuances/?page=0&page_size={size}"),
        ("deviation API: statements at 20 / 100 rows",
         "/api/v1/deviations/?q=(page:0,page_size:{size})"),
    )
    rows = []
    for figure, pattern in lists:
        try:
            counts = []
            for size in (20, 100):
                url = pattern.format(size=size)
                answer = api.get_json(url)
                if len(answer["result"]) != min(size, answer["count"]):
                    raise RuntimeError(f"{len(answer['result'])} rows, not {size}")
                with Statements(engine) as seen:
                    api.get_json(url)
                counts.append(seen.count)
            rows.append(Row(figure, f"{counts[0]} / {counts[1]}", target="equal",
                            ok=yes(counts[0] == counts[1])))
        except Exception as exc:
            rows.append(Row(figure, f"error: {exc}"))
    return rows


# --- the sweeps -------------------------------------------------------------------------------

def sweeps(flask_app, engine) -> list[Row]:
    from app.workflow import sweeps as workflow_sweeps

    now = clock.now()
    rows = []
    with flask_app.app_context():
        for run in ("first", "second"):
            started = time.perf_counter()
            result = workflow_sweeps.run_all(now, trigger="bench")
            elapsed = time.perf_counter() - started
            changed = sum(result.values())
            detail = ", ".join(f"{name} {n}" for name, n in result.items() if n)
            figure = f"sweep, {run} run at the same time"
            if run == "first":
                rows.append(Row(figure, f"{elapsed:.2f} s, {changed} changes",
                                floor=detail or "nothing due"))
            else:
                rows.append(Row(figure, f"{elapsed:.2f} s, {changed} changes",
                                target="0 changes", ok=yes(changed == 0)))
        db.session.remove()
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
                rows.append(Row(f"{figure} ({rows_text} rows, {size // 1024} KiB)",
                                f"{elapsed:.2f} s, peak {mib(peak)}", f"SQL {elapsed_text(floor)}",
                                f"{elapsed / floor:.1f}×" if floor else ""))
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
