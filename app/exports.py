"""The one export writer: every file a person or a client downloads (the deviation report from
the screen and from the API) is written here, as CSV or XLSX, streamed.

- Streaming: the query runs on a connection of its own, opened inside the body's generator. A
  streamed body is read after the request has ended, when the request's session (and a
  server-side cursor opened in it) is gone; so nothing of the request is used once the answer
  has started, at any row count, on SQLite and PostgreSQL.
- Formula injection: a text cell that starts with =, +, -, @, a tab or a carriage return would
  be read as a formula by a spreadsheet; it gets a leading quote (') and stays text.
- Protected identity: for a login without clearance the person columns of a protected person's
  row are masked (the HSA-id stays, so the case can be followed up).
"""

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime
from tempfile import SpooledTemporaryFile

from flask import Response
from openpyxl import Workbook

from app import access
from app.extensions import db

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CHUNK_BYTES = 64 * 1024
BATCH_ROWS = 500
XLSX_IN_MEMORY = 8 * 1024 * 1024
MIMETYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
FORMATS = tuple(MIMETYPES)


@dataclass(frozen=True)
class Column:
    """One column: the row's key, its header, and optionally words for its codes."""

    key: str
    header: str
    labels: dict = field(default_factory=dict)


def neutralise(value):
    """A text that a spreadsheet would run as a formula, quoted so it stays text."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def cell(value):
    """A value as a cell: empty for None, ISO for dates, text neutralised."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="minutes")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (bool, int, float)):
        return value
    return neutralise(str(value))


def query_rows(query, to_row=dict, batch_rows=BATCH_ROWS):
    """The rows of `query` as dicts, read in batches on a connection of the export's own (the
    engine is taken now; the connection is opened when the body is first read)."""
    engine = db.engine

    def rows():
        with engine.connect() as connection:
            result = connection.execution_options(yield_per=batch_rows).execute(query)
            for row in result:
                yield to_row(row)

    return rows()


def masking(cleared: bool, person_keys=("person",)):
    """A row transform that masks the person columns of a protected person for a login
    without clearance (the mask's words fixed now, while the request's language is known)."""
    mask = str(access.MASK)

    def apply(row: dict) -> dict:
        if not cleared and row.get("protected_identity"):
            for key in person_keys:
                if key in row:
                    row[key] = mask
        return row

    return apply


def _values(columns, row):
    return [cell(column.labels.get(row.get(column.key), row.get(column.key))
                 if column.labels else row.get(column.key)) for column in columns]


def csv_chunks(columns, rows, delimiter=";"):
    """CSV for Swedish Excel (BOM, semicolons), yielded in chunks of about 64 kB."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter)
    buffer.write("\ufeff")
    writer.writerow([neutralise(column.header) for column in columns])
    for row in rows:
        writer.writerow(_values(columns, row))
        if buffer.tell() >= CHUNK_BYTES:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def xlsx_chunks(columns, rows, sheet_title="Export"):
    """XLSX: openpyxl's write-only mode keeps memory flat; the file is spooled (to disk when
    large) and then yielded in chunks."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=sheet_title[:31])
    sheet.append([neutralise(column.header) for column in columns])
    for row in rows:
        sheet.append(_values(columns, row))
    with SpooledTemporaryFile(max_size=XLSX_IN_MEMORY) as spool:
        workbook.save(spool)
        spool.seek(0)
        while chunk := spool.read(CHUNK_BYTES):
            yield chunk


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

    query = deviations.report_query(user, filters)
    mask = masking(cleared)
    return query_rows(query, lambda row: mask(deviations.report_row(row)))
