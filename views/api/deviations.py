"""Deviations through the API: the list (a manager sees only their own units), notes, and the
report download as CSV or XLSX, streamed."""

import csv
import io
import os
import tempfile

from flask import current_app, request, stream_with_context
from flask_appbuilder.api import expose, protect, safe
from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.security.decorators import permission_name
from sqlalchemy import select

from app import clock
from app.errors import NotFound
from app.extensions import db
from app.privacy import MASK, current_user_cleared
from models import Deviation
from views.api import schemas as s
from views.api.base import RegisterApi, StepApi, api_step, json_body, workflow
from views.listing import ListInterface


def _user():
    return current_app.appbuilder.sm.current_user


class VisibleToUser(BaseFilter):
    """Row-level filter: the workflow's condition (`deviations.visibility(user)`), applied to
    the unit column directly."""

    name = "Visible to the user"
    arg_name = "visible"

    def apply(self, query, value):
        condition = workflow("deviations").visibility(_user())
        return query if condition is None else query.filter(condition)


class DeviationApi(RegisterApi):
    resource_name = "deviations"
    class_permission_name = "DeviationApi"
    openapi_spec_tag = "Deviations"
    datamodel = ListInterface(Deviation)
    include_route_methods = {"get", "get_list", "note"}
    base_filters = [["id", VisibleToUser, None]]
    list_columns = ["id", "type", "status", "created_at", "card_serial", "description",
                    "issuance_id", "unit_id", "unit.name", "person.hsa_id", "person.name",
                    "person.protected_identity"]
    show_columns = list_columns
    search_columns = ["type", "status", "created_at", "card_serial"]
    order_columns = ["id", "created_at", "type", "status"]
    base_order = ("created_at", "desc")
    openapi_spec_component_schemas = s.COMPONENTS

    def pre_get_list(self, data):
        super().pre_get_list(data)
        _mask(data.get("result", []))

    def pre_get(self, data):
        _mask([data.get("result", {})])

    @expose("/<int:pk>/notes", methods=["POST"])
    @protect()
    @safe
    @permission_name("note")
    @api_step
    def note(self, pk):
        """Add a note to a deviation (the follow-up).
        ---
        post:
          summary: Add a note
          parameters:
          - {in: path, name: pk, required: true, schema: {type: integer}}
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  $ref: '#/components/schemas/NoteSchema'
          responses:
            201:
              description: Noted
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/NoteResultSchema'
            400:
              $ref: '#/components/responses/ApiError'
            401:
              $ref: '#/components/responses/401'
            403:
              $ref: '#/components/responses/403'
            404:
              $ref: '#/components/responses/404'
            422:
              $ref: '#/components/responses/Refused'
        """
        one = select(Deviation.id).where(Deviation.id == pk)
        condition = workflow("deviations").visibility(_user())
        visible = db.session.execute(
            one if condition is None else one.where(condition)).first()
        if visible is None:
            raise NotFound("deviation", pk)
        data = json_body(s.NoteSchema())
        workflow("deviations").add_note(pk, data["text"])
        deviation = db.session.get(Deviation, pk)
        db.session.refresh(deviation)
        return self.response(201, id=pk, notes=len(deviation.notes))


def _mask(rows):
    if current_user_cleared():
        return
    for row in rows:
        person = row.get("person") or {}
        if person.get("protected_identity"):
            person["name"] = str(MASK)


class ReportApi(StepApi):
    resource_name = "reports"
    class_permission_name = "ReportApi"
    openapi_spec_tag = "Reports"
    openapi_spec_component_schemas = s.COMPONENTS

    @expose("/deviations", methods=["GET"])
    @protect()
    @safe
    @permission_name("get")
    @api_step
    def deviation_report(self):
        """The deviation report as a file (a manager gets only their own units).
        ---
        get:
          summary: Download the deviation report
          parameters:
          - {in: query, name: format, schema: {type: string, enum: [csv, xlsx], default: csv}}
          - {in: query, name: from, schema: {type: string, format: date}}
          - {in: query, name: to, schema: {type: string, format: date}}
          - {in: query, name: unit_id, schema: {type: integer}}
          - in: query
            name: type
            schema:
              type: string
              enum: [not_returned, receipt_missing_blocked, card_lost,
                     mail_receipt_not_returned, manual]
          - {in: query, name: status, schema: {type: string, enum: [open, in_progress, closed]}}
          responses:
            200:
              description: The report, streamed as a download
              content:
                text/csv:
                  schema: {type: string}
                application/vnd.openxmlformats-officedocument.spreadsheetml.sheet:
                  schema: {type: string, format: binary}
            400:
              $ref: '#/components/responses/ApiError'
            401:
              $ref: '#/components/responses/401'
            403:
              $ref: '#/components/responses/403'
        """
        args = s.ReportQuerySchema().load(request.args.to_dict())
        filters = {"from": args["date_from"], "to": args["date_to"], "unit_id": args["unit_id"],
                   "type": args["type"], "status": args["status"]}
        rows = workflow("deviations").report_rows(_user(), filters)
        name = f"avvikelser-{clock.today().isoformat()}.{args['format']}"
        if args["format"] == "xlsx":
            body, mimetype = _xlsx_chunks(rows), XLSX
        else:
            body, mimetype = _csv_chunks(rows), "text/csv; charset=utf-8"
        response = current_app.response_class(stream_with_context(body), mimetype=mimetype)
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _csv_chunks(rows):
    """CSV with a BOM (Excel opens it as UTF-8), a few hundred rows per chunk."""
    buffer = io.StringIO()
    writer = None
    yield "\ufeff"
    for count, row in enumerate(rows, 1):
        if writer is None:
            writer = csv.DictWriter(buffer, fieldnames=list(row), delimiter=";")
            writer.writeheader()
        writer.writerow({k: _cell(v) for k, v in row.items()})
        if count % 500 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _xlsx_chunks(rows, chunk_size=64 * 1024):
    """openpyxl's write-only workbook into a temporary file, then streamed and removed."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Avvikelser")
    header = None
    for row in rows:
        if header is None:
            header = list(row)
            sheet.append(header)
        sheet.append([_cell(row[key]) for key in header])
    handle, path = tempfile.mkstemp(suffix=".xlsx")
    os.close(handle)
    try:
        workbook.save(path)
        with open(path, "rb") as stream:
            while chunk := stream.read(chunk_size):
                yield chunk
    finally:
        os.unlink(path)


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, (str, int, float)):
        return value
    return str(value)
