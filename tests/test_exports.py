"""The one export writer: the deviation report from the screen and from the API, CSV and XLSX,
streamed, on PostgreSQL at thousands of rows; formula cells neutralised; protected identity
masked for an uncleared manager; report dates checked before the stream starts; codes in the
words of app.labels, Swedish headers, Swedish times to the minute, real date cells and readable
widths in XLSX."""

import csv
import hashlib
import io
import re
import threading
import tracemalloc
import zipfile
from datetime import date, datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from openpyxl import load_workbook
from openpyxl.utils.escape import unescape
from sqlalchemy import insert, select

from app import exports
from app.extensions import db
from models import Deviation, Person, Unit
from tests.job_support import redis_server  # noqa: F401
from tests.workflow_support import apply, approve

CHEF_UNIT = "Hallands sjukhus Halmstad, Akutmottagningen"
FORMULAS = ['=HYPERLINK("http://x","y")', "+1", "-2", "@SUM(A1)", "\tTab", "\rCR"]
PROTECTED = "Zelda Skyddadsson"
ROWS = 3000


def _unit_id(name):
    return db.session.execute(select(Unit.id).where(Unit.name == name)).scalar_one()


@pytest.fixture
def many_deviations(app):
    """ROWS deviations in the Chef's unit (inserted in one statement), on people whose names
    are formulas, one protected person, and a few in another unit."""
    unit_id = _unit_id(CHEF_UNIT)
    other_unit = _unit_id("Capio Vårdcentral Laholm")
    names = [*FORMULAS, PROTECTED, "Vanlig Person"]
    people = []
    for index, name in enumerate(names):
        person = Person(hsa_id=f"SE2321000131-E00000009{index:04d}", name=name,
                        personal_number=None, unit_id=unit_id,
                        protected_identity=name == PROTECTED,
                        email=f"export{index}@example.se")
        db.session.add(person)
        people.append(person)
    outsider = Person(hsa_id="SE2321000131-E000000098000", name="Annan Enhet",
                      unit_id=other_unit, protected_identity=False)
    db.session.add(outsider)
    db.session.flush()
    start = datetime(2026, 3, 1, 8, 0)
    rows = [{"type": "manual", "status": "open", "person_id": people[i % len(people)].id,
             "unit_id": unit_id, "description": FORMULAS[i % len(FORMULAS)],
             "created_at": start + timedelta(minutes=i)} for i in range(ROWS)]
    rows += [{"type": "manual", "status": "open", "person_id": outsider.id,
              "unit_id": other_unit, "description": "utanför", "created_at": start}
             for _ in range(5)]
    db.session.execute(insert(Deviation), rows)
    db.session.commit()
    return {"unit_id": unit_id, "people": len(people)}


def _csv(data):
    text = data.decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text), delimiter=";"))


def _xlsx(data):
    """The sheet's values as a spreadsheet reads them: a control character in text is stored
    as _xHHHH_ (ECMA-376), which Excel decodes and openpyxl leaves as it is."""
    sheet = load_workbook(io.BytesIO(data), read_only=True).active
    return [["" if v is None else unescape(v) if isinstance(v, str) else v for v in row]
            for row in sheet.iter_rows(values_only=True)]


def _check(table, name_column, description_column):
    header, *body = table
    assert len(body) == ROWS
    names = {row[header.index(name_column)] for row in body}
    assert PROTECTED not in names
    assert "Skyddad identitet" in names
    # Every cell that a spreadsheet would read as a formula starts with a quote: text.
    for row in body:
        for cell in row:
            if isinstance(cell, str) and cell:
                assert cell[0] not in "=+-@\t\r", cell
    assert "'" + FORMULAS[0] in names
    descriptions = {row[header.index(description_column)] for row in body}
    assert descriptions == {"'" + formula for formula in FORMULAS}
    assert "Annan Enhet" not in names


def _as_served(client, url, **kwargs):
    """The request as a server runs it: in a thread of its own, without the test's application
    context, so the request's teardown happens before the streamed body is read."""
    answer = {}

    def run():
        try:
            response = client.get(url, **kwargs)
            answer["status"], answer["streamed"] = response.status_code, response.is_streamed
            answer["data"] = response.get_data()
            response.close()
        except Exception as exc:  # noqa: BLE001  (handed to the test's thread)
            answer["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in answer:
        raise answer["error"]
    assert answer["status"] == 200 and answer["streamed"]
    return answer["data"]


def _screen(login, fmt):
    return _as_served(login("Chef"), f"/deviations/report/export?format={fmt}")


def _api(client, api_headers, fmt):
    return _as_served(client, f"/api/v1/reports/deviations?format={fmt}",
                      headers=api_headers("Chef"))


@pytest.mark.postgresql_only
def test_screen_csv_of_thousands_of_rows_on_postgresql(login, many_deviations):
    _check(_csv(_screen(login, "csv")), "Namn", "Beskrivning")


@pytest.mark.postgresql_only
def test_screen_xlsx_of_thousands_of_rows_on_postgresql(login, many_deviations):
    _check(_xlsx(_screen(login, "xlsx")), "Namn", "Beskrivning")


@pytest.mark.postgresql_only
def test_api_csv_of_thousands_of_rows_on_postgresql(client, api_headers, many_deviations):
    _check(_csv(_api(client, api_headers, "csv")), "person", "description")


@pytest.mark.postgresql_only
def test_api_xlsx_of_thousands_of_rows_on_postgresql(client, api_headers, many_deviations):
    _check(_xlsx(_api(client, api_headers, "xlsx")), "person", "description")


@pytest.mark.both_databases
@pytest.mark.parametrize("field,value", [("from", "0001-01-01"), ("to", "9999-12-31"),
                                         ("from", "2026-02-30"), ("to", "1899-12-31")])
def test_out_of_range_dates_are_refused_before_the_stream(client, api_headers, login, dialect,
                                                          field, value):
    answer = client.get("/api/v1/reports/deviations", query_string={field: value},
                        headers=api_headers("Chef"))
    assert answer.status_code == 400, answer.get_data(as_text=True)[:200]
    assert field in answer.get_json()["errors"]
    page = login("Chef").get(f"/deviations/report/export?format=csv&{field}={value}",
                             follow_redirects=True)
    assert page.status_code == 200
    assert "text/html" in page.content_type
    assert {"from": "Från och med: ", "to": "Till och med: "}[field] in page.get_data(as_text=True)


@pytest.mark.both_databases
def test_from_after_to_is_refused(client, api_headers, dialect):
    answer = client.get("/api/v1/reports/deviations",
                        query_string={"from": "2026-03-02", "to": "2026-03-01"},
                        headers=api_headers("Chef"))
    assert answer.status_code == 400
    assert "to" in answer.get_json()["errors"]


# --- big exports: built by a job, progress shown, then a download --------------------------

def _follow_job(client, location):
    page = client.get(location)
    assert page.status_code == 200
    return page.get_data(as_text=True)


@pytest.mark.postgresql_only
def test_a_big_export_is_built_by_the_worker_with_progress_and_a_download(
        app, login, client, api_headers, many_deviations, redis_server,  # noqa: F811
        monkeypatch):
    """Above the stream limit the screen and the API hand the export to the queue; the same
    worker `make run` runs in-process builds it; only who asked may follow and download it."""
    from redis import Redis
    from rq import Queue

    from app.queues import QUEUE_NAME
    from jobs import context
    from jobs.worker import ThreadWorker

    monkeypatch.setitem(app.config, "EXPORT_STREAM_MAX_ROWS", 1000)
    monkeypatch.setitem(app.config, "REDIS_URL", redis_server.url)
    monkeypatch.setitem(context._state, "app", None)
    context.use_app(app)
    chef = login("Chef")
    started = chef.get("/deviations/report/export?format=xlsx")
    assert started.status_code == 302 and "/deviations/report/jobs/" in started.location
    assert 'data-status="queued"' in _follow_job(chef, started.location)
    headers = api_headers("Chef")
    queued = client.get("/api/v1/reports/deviations?format=csv", headers=headers)
    assert queued.status_code == 202
    state = queued.get_json()
    assert state["status"] == "queued" and "file_url" not in state
    assert login("Servicecenter").get(started.location).status_code == 404  # not theirs

    connection = Redis.from_url(redis_server.url)
    assert Queue(QUEUE_NAME, connection=connection).count == 2
    ThreadWorker([Queue(QUEUE_NAME, connection=connection)], connection=connection).work(
        burst=True, logging_level="WARNING")

    page = _follow_job(chef, started.location)
    assert 'data-status="done"' in page, re.findall(r'data-status="[^"]*"', page)
    assert str(ROWS) in page
    link = started.location + "/file"
    _check(_xlsx(chef.get(link).get_data()), "Namn", "Beskrivning")
    done = client.get(state["status_url"], headers=headers).get_json()
    assert done["status"] == "done" and done["rows_done"] == done["rows_total"] == ROWS
    _check(_csv(client.get(done["file_url"], headers=headers).get_data()), "person",
           "description")
    assert client.get(done["file_url"], headers=api_headers("Servicecenter")).status_code == 404


def test_without_a_queue_the_same_job_runs_in_the_request(app, login, as_user, monkeypatch):
    from app.workflow import deviations
    from models import ExportJob

    with as_user("servicecenter"):
        for prefix in ("Anna", "Björn", "Eva"):
            deviations.create("manual", "=1+1", person_hsa_id=db.session.execute(
                select(Person.hsa_id).where(Person.name.like(f"{prefix}%"))).scalar_one())
    monkeypatch.setitem(app.config, "EXPORT_STREAM_MAX_ROWS", 2)
    chef = login("Chef")
    started = chef.get("/deviations/report/export?format=csv")
    assert started.status_code == 302
    assert 'data-status="done"' in _follow_job(chef, started.location)
    header, *rows = _csv(chef.get(started.location + "/file").get_data())
    assert len(rows) == 3
    assert {row[header.index("Beskrivning")] for row in rows} == {"'=1+1"}
    assert {row[header.index("Namn")] for row in rows} == {
        "Anna Åkesson", "Björn Östlund", "Skyddad identitet"}
    assert db.session.execute(select(ExportJob.status)).scalars().all() == ["done"]
    from models import AuditEvent

    asked = db.session.execute(select(AuditEvent).where(AuditEvent.action == "export.request")
                               ).scalar_one()
    assert asked.actor == "chef" and asked.after["format"] == "csv"


def test_the_job_page_shows_progress_and_refreshes(app, login):
    from app import clock
    from models import ExportJob

    chef = app.appbuilder.sm.find_user(username="chef")
    job = ExportJob(user_id=chef.id, kind="deviations", format="csv", layout="screen",
                    filters={}, status="running", rows_done=1500, rows_total=3000,
                    filename="avvikelser.csv", created_at=clock.now())
    db.session.add(job)
    db.session.commit()
    page = _follow_job(login("Chef"), f"/deviations/report/jobs/{job.id}")
    assert "Bygger filen: 1500 av 3000 rader." in page
    assert 'http-equiv="refresh"' in page
    assert login("Chef").get(f"/deviations/report/jobs/{job.id}/file").status_code == 404


@pytest.mark.postgresql_only
def test_the_job_writes_its_progress_while_it_runs(app, as_user, many_deviations, monkeypatch):
    from app import exports
    from models import ExportJob

    monkeypatch.setattr(exports, "PROGRESS_EVERY", 500)
    seen = []
    writer = exports.chunks
    engine = db.engine

    def watched(*args, **kwargs):
        for chunk in writer(*args, **kwargs):
            with engine.connect() as sql:
                seen.append(sql.execute(select(ExportJob.status, ExportJob.rows_done)).one())
            yield chunk

    monkeypatch.setattr(exports, "chunks", watched)
    with as_user("chef") as chef:
        job = exports.start_job(chef, "deviations", "csv", "api", {}, "avvikelser.csv")
    assert job.status == "done" and job.rows_done == ROWS
    running = [done for status, done in seen if status == "running"]
    assert any(0 < done < ROWS for done in running), seen


# --- the words and times of the files: labels, Swedish headers, real date cells ------------


WINTER = datetime(2026, 3, 2, 8, 5, 42)  # UTC; 09:05 in Sweden
SUMMER = datetime(2026, 7, 1, 8, 30, 15)  # UTC; 10:30 in Sweden
SCREEN_HEADERS = ["Avvikelse", "Skapad", "Typ", "Status", "Enhet", "Namn", "HSA-id",
                  "Kortnummer", "Giltig till", "Beskrivning", "Stängd den"]


@pytest.fixture
def two_known_deviations(as_user, set_now):
    """A lost card in winter (closed in summer), with the issuance's end date; a manual one
    without issuance in summer (its date, closed and serial empty)."""
    from app.workflow import deviations, lifecycle

    set_now(WINTER - timedelta(minutes=30))
    issuance = apply(as_user)
    approve(as_user, issuance.id)
    set_now(WINTER)
    with as_user("Servicecenter"):
        lifecycle.report_lost(issuance.id, "Tappat på bussen")
    set_now(SUMMER)
    with as_user("Servicecenter"):
        manual = deviations.create("manual", "Uppföljning", person_hsa_id=db.session.execute(
            select(Person.hsa_id).where(Person.name.like("Björn%"))).scalar_one())
    lost = db.session.execute(select(Deviation).where(Deviation.type == "card_lost")).scalar_one()
    with as_user("chef"):
        deviations.close(lost.id)
    return {"lost": lost.id, "manual": manual.id, "valid_until": issuance.valid_until,
            "serial": issuance.card.serial}


def _screen_file(login, fmt):
    return login("Chef").get(f"/deviations/report/export?format={fmt}").get_data()


def _rows_by_id(table, id_column):
    header, *body = table
    return header, {int(row[header.index(id_column)]): dict(zip(header, row, strict=True))
                    for row in body}


def test_screen_xlsx_has_real_date_cells_words_and_widths(login, two_known_deviations):
    known = two_known_deviations
    book = load_workbook(io.BytesIO(_screen_file(login, "xlsx")))
    sheet = book.active
    header = [c.value for c in sheet[1]]
    assert header == SCREEN_HEADERS
    assert all(c.font.b for c in sheet[1]) and sheet.freeze_panes == "A2"
    rows = {row[0].value: {h: c for h, c in zip(header, row, strict=True)}
            for row in sheet.iter_rows(min_row=2)}
    lost, manual = rows[known["lost"]], rows[known["manual"]]
    for created, local in ((lost["Skapad"], datetime(2026, 3, 2, 9, 5)),
                           (manual["Skapad"], datetime(2026, 7, 1, 10, 30)),
                           (lost["Stängd den"], datetime(2026, 7, 1, 10, 30))):
        assert created.is_date and created.number_format == exports.MOMENT_FORMAT
        assert created.value == local  # Swedish wall-clock time, to the minute, no zone
    until = lost["Giltig till"]
    assert until.is_date and until.number_format == exports.DATE_FORMAT
    assert until.value.date() == known["valid_until"]
    assert (lost["Typ"].value, lost["Status"].value) == ("Reservkort förlorat", "Stängd")
    assert (manual["Typ"].value, manual["Status"].value) == ("Manuell", "Öppen")
    assert lost["Kortnummer"].value == known["serial"] and lost["Avvikelse"].data_type == "n"
    for empty in ("Giltig till", "Kortnummer", "Stängd den"):
        assert manual[empty].value is None
    widths = {header[i]: sheet.column_dimensions[chr(ord("A") + i)].width
              for i in range(len(header))}
    assert all(widths[h] >= len(h) + 2 for h in header)
    assert widths["Skapad"] >= len("2026-03-02 09:05") and widths["Beskrivning"] >= 50
    assert widths["Enhet"] >= 40 and widths["Typ"] >= len("Kvittens ej återsänd")


def test_screen_csv_has_words_and_swedish_minutes(login, two_known_deviations):
    known = two_known_deviations
    header, rows = _rows_by_id(_csv(_screen_file(login, "csv")), "Avvikelse")
    assert header == SCREEN_HEADERS
    lost, manual = rows[known["lost"]], rows[known["manual"]]
    assert lost["Skapad"] == "2026-03-02 09:05" and lost["Stängd den"] == "2026-07-01 10:30"
    assert manual["Skapad"] == "2026-07-01 10:30"
    assert lost["Giltig till"] == known["valid_until"].isoformat()
    assert (lost["Typ"], lost["Status"], manual["Status"]) == ("Reservkort förlorat", "Stängd",
                                                               "Öppen")
    assert manual["Giltig till"] == manual["Stängd den"] == manual["Kortnummer"] == ""
    text = _screen_file(login, "csv").decode("utf-8-sig")
    for internal in ("card_lost", "closed", "None", "True", "+00:00", "T08:"):
        assert internal not in text, internal


def test_api_files_keep_the_codes_beside_their_words_and_times_with_offset(
        client, api_headers, two_known_deviations):
    known = two_known_deviations
    data = client.get("/api/v1/reports/deviations?format=csv",
                      headers=api_headers("Chef")).get_data()
    header, rows = _rows_by_id(_csv(data), "id")
    lost = rows[known["lost"]]
    assert lost["created_at"] == "2026-03-02T09:05+01:00"
    assert lost["closed_at"] == "2026-07-01T10:30+02:00"
    assert (lost["type"], lost["type_name"]) == ("card_lost", "Reservkort förlorat")
    assert (lost["status"], lost["status_name"]) == ("closed", "Stängd")
    data = client.get("/api/v1/reports/deviations?format=xlsx",
                      headers=api_headers("Chef")).get_data()
    sheet = load_workbook(io.BytesIO(data)).active
    created = sheet.cell(row=2, column=2)
    assert sheet.cell(row=1, column=2).value == "created_at"
    assert created.is_date and created.value == datetime(2026, 3, 2, 9, 5)


def test_the_writer_shows_truth_values_and_nothing_in_words(app):
    """One writer for every file: True/False as Ja/Nej and None as an empty cell, in CSV and
    XLSX alike; text that a spreadsheet would run stays text."""
    columns = [exports.Column("flag", "Skyddad", "bool", exports.yes_no_words()),
               exports.Column("note", "Anteckning")]
    rows = [{"flag": True, "note": "=1+1"}, {"flag": False, "note": None},
            {"flag": None, "note": "vanlig"}]
    table = _csv(b"".join(exports.chunks("csv", columns, iter(rows))))
    assert table == [["Skyddad", "Anteckning"], ["Ja", "'=1+1"], ["Nej", ""], ["", "vanlig"]]
    sheet = load_workbook(io.BytesIO(b"".join(
        exports.chunks("xlsx", columns, iter(rows))))).active
    assert [[c.value for c in row] for row in sheet.iter_rows()] == [
        ["Skyddad", "Anteckning"], ["Ja", "'=1+1"], ["Nej", None], [None, "vanlig"]]


def test_the_job_writes_the_same_swedish_file(app, as_user, two_known_deviations):
    """A big export is written by a worker, outside any request: the same words and cells."""
    from models import ExportJob

    with as_user("chef") as chef:
        job = exports.start_job(chef, "deviations", "xlsx", "screen", {}, "avvikelser.xlsx")
    job = db.session.get(ExportJob, job.id)
    sheet = load_workbook(job.file_path).active
    assert [c.value for c in sheet[1]] == SCREEN_HEADERS
    assert {sheet.cell(row=r, column=4).value for r in (2, 3)} == {"Stängd", "Öppen"}
    assert sheet.cell(row=2, column=2).is_date


def _xlsx_peak_memory(rows):
    """The peak of Python's memory while the XLSX of `rows` lines of distinct text is written."""
    columns = [exports.Column("note", "Anteckning")]
    lines = ({"note": hashlib.sha256(str(n).encode()).hexdigest()} for n in range(rows))
    tracemalloc.start()
    try:
        for _chunk in exports.chunks("xlsx", columns, lines):
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_xlsx_writer_memory_does_not_grow_with_the_rows(app):
    """Ten times the rows, not twice the memory: neither the rows nor the written file are
    held in memory (a file over XLSX_IN_MEMORY goes to disk before it is sent)."""
    small, large = _xlsx_peak_memory(2000), _xlsx_peak_memory(20000)
    assert large < 2 * small, (small, large)


def test_the_xlsx_keeps_text_in_its_cells_and_the_header_in_view(app):
    columns = [exports.Column("name", "Namn"), exports.Column("note", "Anteckning")]
    rows = ({"name": f"Person {n}", "note": "=1+1"} for n in range(600))
    data = b"".join(exports.chunks("xlsx", columns, rows))
    with zipfile.ZipFile(io.BytesIO(data)) as book:
        assert "xl/sharedStrings.xml" not in book.namelist()
    table = _xlsx(data)
    assert table[0] == ["Namn", "Anteckning"] and len(table) == 601
    assert table[-1] == ["Person 599", "'=1+1"]
    assert load_workbook(io.BytesIO(data)).active.freeze_panes == "A2"


def test_an_xlsx_that_fails_half_way_leaves_no_rows_on_disk(app, tmp_path, monkeypatch):
    """The rows written so far are on disk while the file is built; a failed read (the
    database gone) must not leave them behind in the temporary folder."""
    import tempfile

    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))

    def failing_rows():
        for n in range(10):
            yield {"note": f"Person {n}"}
        raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError):
        b"".join(exports.chunks("xlsx", [exports.Column("note", "Anteckning")], failing_rows()))
    assert list(folder.iterdir()) == []


CELL_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.dates(),
    st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(9999, 12, 30)),
    st.text(), st.sampled_from(["", "=HYPERLINK(1)", "+1", "-", "@x", "\tx", "\rx", "open"]))


@given(kind=st.sampled_from(sorted(exports.KINDS)), value=CELL_VALUES)
def test_a_column_makes_its_cells_as_the_general_rule_does(kind, value):
    """The writers choose a column's cell function once; it must give what `cell` gives for
    every kind and every value a row may hold (formulas neutralised, codes in words)."""
    column = exports.Column("x", "X", kind, {"open": "Öppen", True: "Ja", False: "Nej"})
    assert exports.cell_maker(column)(value) == exports.cell(value, column)


@given(st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2100, 12, 30)))
@example(datetime(2026, 3, 29, 0, 59, 59))  # the last UTC moment of winter time
@example(datetime(2026, 3, 29, 1, 0))
@example(datetime(2026, 10, 25, 0, 59, 59))  # the repeated local hour begins after it
@example(datetime(2026, 10, 25, 1, 0))
@example(datetime(1916, 5, 14, 22, 0))  # Sweden's first summer time, begun at 23:00 local
@example(datetime(1916, 9, 30, 22, 59))
def test_a_stored_time_is_shown_in_stockholm_time_across_daylight_saving(moment):
    """The quick conversion (app.clock: the offset looked up in its year's stretches) is the
    zone's own, in every form a file shows it."""
    from app import clock

    local = clock.to_local(moment).replace(second=0, microsecond=0)
    assert exports.local_minute(moment) == local.replace(tzinfo=None)
    assert clock.local_instant_text(moment) == local.isoformat(timespec="minutes")
    assert clock.local_moment_text(moment) == local.strftime("%Y-%m-%d %H:%M")


# --- the writer's shortcuts: kept cells, kept redactions, the database read ahead ------------

@given(st.lists(st.one_of(st.none(), st.sampled_from([datetime(2026, 3, 29, 0, 59),
                                                       datetime(2026, 3, 29, 1, 0)]),
                          # after Excel's first years, which spreadsheets read oddly
                          st.datetimes(min_value=datetime(1901, 1, 2),
                                       max_value=datetime(2100, 12, 30)),
                          st.dates(min_value=date(1901, 1, 1)), st.just("")), max_size=12),
       st.sampled_from(["moment", "instant"]))
def test_a_time_column_keeps_the_row_befores_cell_only_for_the_same_value(values, kind):
    """One writer's cells in a row of values (repeats, a time and then a date, nothing): each
    is what `cell` alone gives, in CSV and in XLSX."""
    column = exports.Column("x", "X", kind)
    make = exports.cell_maker(column)
    assert [make(value) for value in values] == [exports.cell(value, column)
                                                 for value in values]
    rows = [{"n": n, "x": value} for n, value in enumerate(values)]
    number = exports.Column("n", "N", "number")
    table = _xlsx(b"".join(exports.chunks("xlsx", [number, column], iter(rows))))[1:]
    expected = [exports.xlsx_cell(value, column) if value is not None else "" for value in values]
    # a spreadsheet reads a date cell as midnight of its day
    expected = [datetime(v.year, v.month, v.day) if type(v) is date else v for v in expected]
    assert [row[1] for row in table] == expected


def test_a_free_text_seen_before_is_masked_in_every_row(app, as_user):
    """The export redacts a text once and keeps the result (a sweep's few sentences repeat in
    thousands of rows): the protected person's name is masked in every row, also in texts
    past the number kept, and other texts stay as they are."""
    from tests.access_support import CANARY, make_canary

    make_canary(app, as_user, with_login=True)
    naming = f"{CANARY['name']} tappade kortet"
    texts = [naming, "Reservkortet följs upp.",
             *(f"Text {n} om {CANARY['name']}" for n in range(exports.REDACTED_TEXTS_KEPT + 5)),
             naming]
    with app.test_request_context():
        mask = exports.masking(cleared=False)
        shown = [mask({"description": text})["description"] for text in texts * 2]
    assert not [text for text in shown if CANARY["name"] in text]
    assert shown.count("Reservkortet följs upp.") == 2
    assert shown[0] == shown[-1] == f"{exports.access.MASK} tappade kortet"


def test_read_ahead_hands_over_in_order_from_a_thread_of_its_own_a_few_items_ahead():
    made, seen_threads = [], set()

    def items():
        for n in range(40):
            seen_threads.add(threading.get_ident())
            made.append(n)
            yield n

    got = []
    for item in exports.read_ahead(items, depth=2):
        got.append(item)
        # made but not yet read: the queue's depth, the one being handed over, the next
        assert len(made) - len(got) <= 2 + 2
    assert got == list(range(40))
    assert threading.get_ident() not in seen_threads


def test_read_ahead_raises_the_threads_error_and_a_reader_that_stops_early_stops_it():
    def failing():
        yield 1
        raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError, match="went away"):
        list(exports.read_ahead(failing))

    closed = threading.Event()

    def endless():
        try:
            n = 0
            while True:
                n += 1
                yield n
        finally:
            closed.set()

    reader = exports.read_ahead(endless)
    assert [next(reader) for _ in range(3)] == [1, 2, 3]
    reader.close()
    assert closed.is_set(), "the items were closed (and so their connection) with the reader"
    assert not [t for t in threading.enumerate() if t.name == "export-read-ahead"]


@pytest.mark.postgresql_only
def test_on_postgresql_the_export_reads_the_database_in_a_thread_of_its_own(
        app, login, many_deviations):
    """The database works on the next batch while the writer writes this one: the report's
    query is sent from another thread than the one writing the file."""
    from sqlalchemy import event

    threads = []

    def seen(conn, cursor, statement, *args):
        if "FROM deviations" in statement and "ORDER BY deviations.created_at" in statement:
            threads.append(threading.current_thread().name)

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        data = _as_served(login("Chef"), "/deviations/report/export?format=csv")
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    assert len(_csv(data)) - 1 == ROWS
    assert threads and set(threads) == {"export-read-ahead"}, threads
