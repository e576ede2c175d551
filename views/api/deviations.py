"""Deviations through the API: the list (a manager sees only their own units), notes, and the
report download as CSV or XLSX, streamed."""

from flask import current_app, request, url_for
from flask_appbuilder.api import expose, protect, safe
from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.security.decorators import permission_name

from app import access, clock, exports
from app.extensions import db
from models import Deviation, ExportJob
from views.api import schemas as s
from views.api.base import RegisterApi, StepApi, api_step, json_body, workflow
from views.api.steps import step
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
    cursor_paging = True

    @step("/<int:pk>/notes", "note", summary="Add a note", answer="Noted", body="NoteSchema",
          status=201, answer_schema="NoteResultSchema")
    def note(self, pk):
        """Add a note to a deviation (the follow-up)."""
        data = json_body(s.NoteSchema())
        workflow("deviations").add_note(pk, data["text"])
        deviation = db.session.get(Deviation, pk)
        db.session.refresh(deviation)
        return self.response(201, id=pk, notes=len(deviation.notes))


class ReportApi(StepApi):
    resource_name = "reports"
    class_permission_name = "ReportApi"
    openapi_spec_tag = "Reports"

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
            202:
              description: Too big to stream; built by a job whose progress is at `status_url`
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/ExportJobSchema'
            200:
              description: The report, streamed as a download
              content:
                text/csv:
                  schema: {type: string}
                application/vnd.openxmlformats-officedocument.spreadsheetml.sheet:
                  schema: {type: string, format: binary}
        """
        args = s.ReportQuerySchema().load(request.args.to_dict())
        filters = {"from": args["date_from"], "to": args["date_to"], "unit_id": args["unit_id"],
                   "type": args["type"], "status": args["status"]}
        name = f"avvikelser-{clock.today().isoformat()}.{args['format']}"
        answer = exports.deviation_export(_user(), filters, args["format"], "api",
                                          access.current_user_cleared(), name)
        if isinstance(answer, ExportJob):
            return self.response(202, **_job_answer(answer))
        return answer

    @expose("/jobs/<int:job_id>", methods=["GET"])
    @protect()
    @safe
    @permission_name("get")
    @api_step
    def export_job(self, job_id):
        """A big export's progress (only for who asked).
        ---
        get:
          summary: Progress of a big export
          parameters:
          - {in: path, name: job_id, required: true, schema: {type: integer}}
          responses:
            200:
              description: The export's state; `file_url` once it is done
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/ExportJobSchema'
        """
        return self.response(200, **_job_answer(exports.job_for(_user(), job_id)))

    @expose("/jobs/<int:job_id>/file", methods=["GET"])
    @protect()
    @safe
    @permission_name("get")
    @api_step
    def export_job_file(self, job_id):
        """The file of a finished big export (only for who asked).
        ---
        get:
          summary: Download a finished export
          parameters:
          - {in: path, name: job_id, required: true, schema: {type: integer}}
          responses:
            200:
              description: The file
              content:
                text/csv:
                  schema: {type: string}
                application/vnd.openxmlformats-officedocument.spreadsheetml.sheet:
                  schema: {type: string, format: binary}
        """
        return exports.job_file(exports.job_for(_user(), job_id))


def _job_answer(job) -> dict:
    state = exports.job_state(job)
    state["status_url"] = url_for("ReportApi.export_job", job_id=job.id)
    if job.status == "done":
        state["file_url"] = url_for("ReportApi.export_job_file", job_id=job.id)
    return state
