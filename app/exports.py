"""The one export writer: every file a person or a client downloads (the deviation report from
the screen and from the API) is written here, as CSV or XLSX, streamed.

- Streaming: the query runs on a connection of its own, opened inside the body's generator. A
  streamed body is read after the request has ended, when the request's session (and a
  server-side cursor opened in it) is gone; so nothing of the request is used once the answer
  has started, at any row count, on SQLite and PostgreSQL.
- Formula injection: a text cell that starts with =, +, -, @, a tab or a carriage return would
  be read as a formula by a spreadsheet; it gets a leading quote (') and stays text.
- Words: every code is shown in the words of `app.labels` (status, type, reason, channel,
  True/False as Ja/Nej, None as nothing), with Swedish headers; the words are fixed when the
  columns are made (in the request or the job), since the body is written outside both.
- Times: Swedish wall-clock time to the minute. In XLSX dates and times are real date cells
  (local time without a zone, which Excel does not have, and a number format); in CSV text.
  The API layout (keys as headers, for integrations) gives times as ISO 8601 with the offset.
- Protected identity: for a login without clearance the person columns of a protected person's
  row are masked (the HSA-id stays, so the case can be followed up).
- Size: up to EXPORT_STREAM_MAX_ROWS rows stream in the request; a bigger export is an
  ExportJob built by a worker (the same queue and worker as every job; `make run` runs it in
  its own process), whose progress and file the screen and the API show.
"""

import csv
import io
import os
import queue
import secrets
import threading
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from tempfile import SpooledTemporaryFile, TemporaryDirectory

from flask import Response, current_app, send_file
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from redis.exceptions import RedisError
from sqlalchemy import func, select, update
from xlsxwriter import Workbook

from app import access, audit, clock, labels
from app.errors import NotFound
from app.extensions import db
from app.queues import get_queue
from models import ExportJob

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CHUNK_BYTES = 64 * 1024
BATCH_ROWS = 500
REDACTED_TEXTS_KEPT = 256
XLSX_IN_MEMORY = 64 * 1024  # a bigger file is spooled to disk: memory stays flat
MIMETYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
FORMATS = tuple(MIMETYPES)


MOMENT_FORMAT = "yyyy-mm-dd hh:mm"
DATE_FORMAT = "yyyy-mm-dd"
# Column kinds: how a value is written, and the XLSX width (characters) unless a column says.
KINDS = {"text": 24, "number": 10, "code": 28, "bool": 8, "date": 12, "moment": 17,
         "instant": 17}


@dataclass(frozen=True)
class Column:
    """One column: the row's key, its header, its kind (see KINDS), the words for its codes
    (kind "code" and "bool"), and optionally its XLSX width."""

    key: str
    header: str
    kind: str = "text"
    labels: dict = field(default_factory=dict)
    width: int = 0

    @property
    def xlsx_width(self) -> int:
        return max(self.width or KINDS[self.kind], len(self.header) + 2)


def neutralise(value):
    """A text that a spreadsheet would run as a formula, quoted so it stays text."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def local_minute(moment: datetime) -> datetime:
    """A stored naive-UTC time as Swedish wall-clock time to the minute, without a zone (an
    XLSX date cell)."""
    return clock.local_wall_clock(moment).replace(second=0, microsecond=0)


def cell(value, column: Column | None = None):
    """A value as a CSV cell (text): words for codes and truth values, nothing for None,
    Swedish time to the minute, text neutralised."""
    kind = column.kind if column is not None else "text"
    if value is None or value == "":
        return ""
    if kind in ("code", "bool") or isinstance(value, bool):
        words = column.labels if column is not None else {}
        return neutralise(str(words.get(value, value)))
    if isinstance(value, datetime):
        text_of = clock.local_instant_text if kind == "instant" else clock.local_moment_text
        return text_of(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (int, float)):
        return value
    return neutralise(str(value))


_NOTHING_YET = object()


def same_as_before(make):
    """`make` for a time column's values, which keeps what it made for the value before: rows
    come in time order, and a sweep files its deviations at one moment, so the row before
    often has the same time."""
    last = [_NOTHING_YET, None]

    def made(value):
        if last[0] is _NOTHING_YET or value != last[0]:
            last[:] = value, make(value)
        return last[1]

    return made


def cell_maker(column: Column):
    """`cell(value, column)` for this column's values, with its kind looked at once: an export
    calls it for every cell. Values of another type than the kind's go to `cell` itself."""
    if column.kind in ("code", "bool"):
        words = column.labels
        return lambda value: ("" if value is None or value == ""
                              else neutralise(str(words.get(value, value))))
    if column.kind in ("moment", "instant"):
        text_of = (clock.local_instant_text if column.kind == "instant"
                   else clock.local_moment_text)

        return same_as_before(
            lambda value: text_of(value) if type(value) is datetime else cell(value, column))

    def text_cell(value):
        if type(value) is str:
            return "'" + value if value.startswith(FORMULA_STARTS) else value
        return cell(value, column)
    return text_cell


def xlsx_cell(value, column: Column):
    """A value as an XLSX cell's value: dates and times as naive local date values (written
    as real date cells with their format), the rest as `cell` gives it."""
    if isinstance(value, datetime):
        return local_minute(value)
    return value if isinstance(value, date) else cell(value, column)


def query_rows(query, to_row=None, batch_rows=BATCH_ROWS):
    """The rows of `query` as dicts (each passed through `to_row`), read in batches on a
    connection of the export's own (the engine is taken now; the connection is opened when the
    body is first read). On PostgreSQL the batches are read ahead by a thread of their own."""
    engine = db.engine

    def batches():
        with engine.connect() as connection:
            result = connection.execution_options(yield_per=batch_rows).execute(query)
            keys = tuple(result.keys())
            for batch in result.partitions():
                yield keys, batch

    def rows():
        read = read_ahead(batches) if engine.dialect.name == "postgresql" else batches()
        try:
            for keys, batch in read:
                for row in batch:
                    # zip with the keys read once: three times quicker than a Row's mapping
                    values = dict(zip(keys, row, strict=True))
                    yield to_row(values) if to_row else values
        finally:
            read.close()  # a download abandoned half-way stops the reading at once

    return rows()


READ_AHEAD = 2  # batches read but not yet written: memory stays flat
_HANDOFF_WAIT = 0.1  # seconds between looks at whether the reader has stopped


def read_ahead(make_items, depth=READ_AHEAD):
    """What `make_items()` yields, made in a thread of its own at most `depth` items ahead of
    the reader: the database server works on the next batch while the writer writes this one
    (an export waited for each FETCH about a third of its time). An error of the thread is
    raised to the reader; a reader that stops early stops the thread, which closes the
    iterator (and so its connection)."""
    handoff = queue.Queue(maxsize=depth)
    stopped = threading.Event()

    def hand_over(message) -> bool:
        while not stopped.is_set():
            try:
                handoff.put(message, timeout=_HANDOFF_WAIT)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        items = make_items()
        try:
            for item in items:
                if not hand_over((True, item)):
                    return
            hand_over((False, None))
        except BaseException as exc:  # raised again in the reader's thread, never lost
            hand_over((False, exc))
        finally:
            items.close()

    thread = threading.Thread(target=produce, name="export-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            more, item = handoff.get()
            if not more:
                if item is not None:
                    raise item
                return
            yield item
    finally:
        stopped.set()
        thread.join()


def masking(cleared: bool, person_keys=("person",), text_keys=("description",)):
    """A row transform that masks the person columns of a protected person for a login
    without clearance, and redacts the free text that may name one (the mask's words and the
    protected people read now, once for every row)."""
    if cleared:
        return lambda row: row
    mask = str(access.MASK)
    identities = access.protected_identities()
    redacted = {}

    def redact(text):
        # The automatic deviations' texts are a few fixed sentences: each is redacted once
        # per export (the memo is bounded, so memory stays flat whatever the texts).
        if text in redacted:
            return redacted[text]
        shown_text = identities.redact(text, mask=mask)
        if len(redacted) < REDACTED_TEXTS_KEPT:
            redacted[text] = shown_text
        return shown_text

    def apply(row: dict) -> dict:
        if row.get("protected_identity"):
            for key in person_keys:
                if key in row:
                    row[key] = mask
        for key in text_keys:
            if row.get(key):
                row[key] = redact(row[key])
        return row

    return apply


def csv_chunks(columns, rows, delimiter=";"):
    """CSV for Swedish Excel (BOM, semicolons), yielded in chunks of about 64 kB."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter)
    buffer.write("\ufeff")
    writer.writerow([neutralise(column.header) for column in columns])
    makers = [(column.key, cell_maker(column)) for column in columns]
    for row in rows:
        writer.writerow([make(row.get(key)) for key, make in makers])
        if buffer.tell() >= CHUNK_BYTES:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def xlsx_chunks(columns, rows, sheet_title="Export"):
    """XLSX in XlsxWriter's constant-memory mode: each row goes to disk once the next one is
    started and text is stored in its cell (no shared-strings table that grows with the rows),
    so memory stays flat at any row count. The file is spooled (to disk when large) and then
    yielded in chunks. Readable widths, a bold header that stays in view."""
    # The rows' temporary files live in a directory of the export's own, removed even when
    # the download is abandoned half-way (they hold people's data).
    with TemporaryDirectory(prefix="export-") as folder, \
            SpooledTemporaryFile(max_size=XLSX_IN_MEMORY) as spool:
        workbook = Workbook(spool, {"constant_memory": True, "tmpdir": folder})
        sheet = workbook.add_worksheet(sheet_title[:31])
        _write_sheet(workbook, sheet, columns, rows)
        workbook.close()
        spool.seek(0)
        while chunk := spool.read(CHUNK_BYTES):
            yield chunk


def _write_sheet(workbook, sheet, columns, rows):
    for number, column in enumerate(columns):
        sheet.set_column(number, number, column.xlsx_width)
    sheet.freeze_panes(1, 0)
    bold = workbook.add_format({"bold": True})
    for number, column in enumerate(columns):
        sheet.write_string(0, number, neutralise(column.header), bold)
    write_cell = _cell_writers(workbook, sheet)
    writers = [(column.key, number, _column_writer(column, write_cell, sheet))
               for number, column in enumerate(columns)]
    for line, row in enumerate(rows, start=1):
        for key, number, write in writers:
            value = row.get(key)
            if value is not None:
                write(line, number, value)


def _column_writer(column, write_cell, sheet):
    """How a value of this column is written, the kind looked at once (see `cell_maker`):
    text straight as text, other types as `xlsx_cell` turns them."""

    def any_value(line, number, value):
        value = xlsx_cell(value, column)
        if value != "":
            write_cell.get(type(value), sheet.write_string)(line, number, value)

    if column.kind in ("moment", "instant"):
        return _moment_writer(column, write_cell, sheet)
    if column.kind not in ("text", "code", "bool"):
        return any_value
    text = cell_maker(column)
    write_string = sheet.write_string

    def text_value(line, number, value):
        value = text(value)
        if value != "":
            if type(value) is str:
                write_string(line, number, value)
            else:
                any_value(line, number, value)

    return text_value


def _moment_writer(column, write_cell, sheet):
    """A time column's writer, which keeps the cell value of the row before (see
    `same_as_before`)."""
    value_of = same_as_before(lambda value: xlsx_cell(value, column))

    def moment_value(line, number, value):
        shown = value_of(value)
        if shown != "":
            write_cell.get(type(shown), sheet.write_string)(line, number, shown)

    return moment_value


def _cell_writers(workbook, sheet) -> dict:
    """value type -> how a cell of it is written. Text always as text (XlsxWriter's `write`
    would turn "=..." into a formula and URLs into links)."""
    moment = workbook.add_format({"num_format": MOMENT_FORMAT})
    day = workbook.add_format({"num_format": DATE_FORMAT})
    return {
        str: sheet.write_string,
        int: sheet.write_number,
        float: sheet.write_number,
        datetime: lambda row, col, value: sheet.write_datetime(row, col, value, moment),
        date: lambda row, col, value: sheet.write_datetime(row, col, value, day),
    }


def chunks(fmt, columns, rows, sheet_title="Export"):
    if fmt == "xlsx":
        return xlsx_chunks(columns, rows, sheet_title)
    return csv_chunks(columns, rows)


def download(fmt, columns, rows, filename, sheet_title="Export") -> Response:
    """A streamed download of `rows` (an iterator of dicts, e.g. from `query_rows`)."""
    return Response(
        chunks(fmt, columns, rows, sheet_title),
        mimetype=MIMETYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{filename}"',
                 "Cache-Control": "no-store"},
    )


def deviation_report_rows(user, filters, cleared: bool):
    """The deviation report's rows for `user` (the workflow's query and scope), masked for a
    login without clearance. Bad filters raise FieldError now, before any file is started."""
    from app.workflow import deviations

    return _report_rows(deviations.report_query(user, filters), cleared)


def _report_rows(query, cleared):
    from app.workflow import deviations

    mask = masking(cleared)
    return query_rows(query, lambda row: _with_names(mask(deviations.report_values(row))))


# The deviation report's columns: the screen's (Swedish headers, codes in words) and the
# API's (the keys as headers: integrations read them by name; codes beside their words).
# key, header, kind, words (a labels kind), width
SCREEN_COLUMNS = (
    ("id", _l("Deviation"), "number", None, 0),
    ("created_at", _l("Created"), "moment", None, 0),
    ("type", _l("Type"), "code", "deviation_type", 0),
    ("status", _l("Status"), "code", "deviation_status", 16),
    ("unit", _l("Unit"), "text", None, 40),
    ("person", _l("Name"), "text", None, 26),
    ("hsa_id", _l("HSA-id"), "text", None, 28),
    ("card_serial", _l("Card serial"), "text", None, 18),
    ("valid_until", _l("Valid until"), "date", None, 0),
    ("description", _l("Description"), "text", None, 60),
    ("closed_at", _l("Closed at"), "moment", None, 0),
)
API_COLUMNS = ("id", "created_at", "type", "status", "person", "hsa_id", "unit", "card_serial",
               "valid_until", "description", "closed_at", "type_name", "status_name")
# The API's derived columns: the words of a code column.
API_NAMES = {"type_name": ("type", "deviation_type"), "status_name": ("status",
                                                                      "deviation_status")}
LAYOUTS = ("screen", "api")
EXPORT_LOCALE = "sv"  # the files are Swedish, like the paper documents


def words(kind) -> dict:
    """code -> words of a labels kind, as plain text (fixed now, in Swedish)."""
    with force_locale(EXPORT_LOCALE):
        return dict(labels.words(kind))


def yes_no_words() -> dict:
    """True/False -> Ja/Nej (fixed now, in Swedish), for a column of kind "bool"."""
    with force_locale(EXPORT_LOCALE):
        return {True: labels.yes_no(True), False: labels.yes_no(False)}


def deviation_columns(layout) -> list[Column]:
    with force_locale(EXPORT_LOCALE):
        if layout == "api":
            return [_api_column(key) for key in API_COLUMNS]
        return [Column(key, str(header), kind, words(kind_of_words) if kind_of_words else {},
                       width)
                for key, header, kind, kind_of_words, width in SCREEN_COLUMNS]


def _api_column(key) -> Column:
    kinds = {"id": "number", "created_at": "instant", "closed_at": "instant",
             "valid_until": "date"}
    if key in API_NAMES:
        return Column(key, key, "code", words(API_NAMES[key][1]))
    return Column(key, key, kinds.get(key, "text"))


def _with_names(row: dict) -> dict:
    """The API layout's name columns read the code columns."""
    for name, (key, _kind) in API_NAMES.items():
        row[name] = row.get(key)
    return row


def _bounded_count(query, limit=None) -> int:
    """How many rows `query` has; with `limit`, counting stops just above it."""
    counted = query.order_by(None)
    if limit is not None:
        counted = counted.limit(limit + 1)
    return db.session.execute(select(func.count()).select_from(counted.subquery())).scalar_one()


def deviation_export(user, filters, fmt, layout, cleared, filename):
    """The deviation report for `user`: a streamed download (a Response) when it has at most
    EXPORT_STREAM_MAX_ROWS rows, else an ExportJob that a worker builds (the caller shows its
    progress). Bad filters raise FieldError before anything starts."""
    from app.workflow import deviations

    query = deviations.report_query(user, filters)
    limit = current_app.config["EXPORT_STREAM_MAX_ROWS"]
    if _bounded_count(query, limit) <= limit:
        return download(fmt, deviation_columns(layout), _report_rows(query, cleared), filename,
                        sheet_title="Avvikelser")
    return start_job(user, "deviations", fmt, layout, deviations.report_filters(filters),
                     filename)


# --- big exports: built by a job ------------------------------------------------------------

EXPORT_JOB = "jobs.tasks.run_export"
PROGRESS_EVERY = 1000


def start_job(user, kind, fmt, layout, filters, filename) -> ExportJob:
    """Record the export and hand it to the queue; without a queue (or when Redis cannot be
    reached) the same job runs here and now."""
    job = ExportJob(user_id=user.id, kind=kind, format=fmt, layout=layout,
                    filters={k: v.isoformat() if isinstance(v, date) else v
                             for k, v in filters.items()},
                    status="queued", rows_done=0, filename=filename, created_at=clock.now())
    db.session.add(job)
    db.session.flush()
    # Who took which people's data out, and when: a big export is on the record.
    audit.record("export.request", "export_job", job.id, after={
        "kind": kind, "format": fmt, "filters": job.filters}, actor=(user.id, user.username))
    db.session.commit()
    queue = get_queue()
    if queue is not None:
        try:
            queue.enqueue(EXPORT_JOB, job.id, job_timeout=3600, result_ttl=3600,
                          failure_ttl=7 * 24 * 3600)
            return job
        except RedisError as exc:
            current_app.logger.warning("export %s not enqueued (Redis unavailable): %s",
                                       job.id, exc)
    run_job(job.id)
    db.session.refresh(job)
    return job


def _export_dir() -> Path:
    folder = Path(current_app.config["INSTANCE_DIR"]) / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def run_job(job_id) -> ExportJob | None:
    """Build the file of export job `job_id` for the login that asked (its scope and
    clearance), writing the progress as it goes. A job already done is left alone."""
    from app.workflow import deviations

    job = db.session.get(ExportJob, job_id)
    if job is None or job.status in ("done", "failed"):
        return job
    user = db.session.get(current_app.appbuilder.sm.user_model, job.user_id)
    try:
        job.status, job.rows_done = "running", 0
        query = deviations.report_query(user, job.filters)
        job.rows_total = _bounded_count(query)
        db.session.commit()
        rows = _progress(job.id, _report_rows(query, access.has_clearance(user)))
        path = _export_dir() / f"{job.id}-{secrets.token_hex(8)}.{job.format}"
        partial = path.with_suffix(".part")
        with partial.open("wb") as out:
            for chunk in chunks(job.format, deviation_columns(job.layout), rows, "Avvikelser"):
                out.write(chunk)
        os.replace(partial, path)
        job = db.session.get(ExportJob, job_id, populate_existing=True)
        job.status, job.file_path, job.finished_at = "done", str(path), clock.now()
        job.rows_done = job.rows_total
        db.session.commit()
    except Exception as exc:
        db.session.rollback()
        job = db.session.get(ExportJob, job_id, populate_existing=True)
        job.status, job.error, job.finished_at = "failed", str(exc)[:500], clock.now()
        db.session.commit()
        raise
    return job


def _progress(job_id, rows):
    """Pass the rows on, writing how many have been written every PROGRESS_EVERY rows."""
    # SQLite (the embedded database, without WAL) cannot commit while the export's own read
    # is open: there the progress shows when the file is done.
    live = db.session.get_bind().dialect.name != "sqlite"
    done = 0
    for row in rows:
        yield row
        done += 1
        if live and done % PROGRESS_EVERY == 0:
            db.session.execute(update(ExportJob).where(ExportJob.id == job_id)
                               .values(rows_done=done))
            db.session.commit()


def job_for(user, job_id) -> ExportJob:
    """The login's own export job; another's, or none, is NotFound."""
    job = db.session.get(ExportJob, job_id, populate_existing=True) if job_id else None
    if job is None or user is None or job.user_id != getattr(user, "id", None):
        raise NotFound("export", job_id)
    return job


def job_state(job) -> dict:
    return {"id": job.id, "status": job.status, "format": job.format,
            "rows_done": job.rows_done, "rows_total": job.rows_total,
            "created_at": clock.isoformat(job.created_at),
            "finished_at": clock.isoformat(job.finished_at)}


def job_file(job) -> Response:
    """The finished file as a download; NotFound until it is done."""
    if job.status != "done" or not job.file_path or not os.path.exists(job.file_path):
        raise NotFound("export file", job.id)
    return send_file(job.file_path, mimetype=MIMETYPES[job.format], as_attachment=True,
                     download_name=job.filename, max_age=0)
