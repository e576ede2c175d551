"""What every API of the back office shares: turning the workflow's typed errors into the
answers of the contract (400 malformed, 404 unknown, 422 refused), reading JSON bodies with a
marshmallow schema, and the OpenAPI components that describe those answers."""

import functools
import logging
from importlib import import_module

from flask import request
from flask_appbuilder.api import BaseApi, ModelRestApi
from flask_babel import lazy_gettext as _l
from marshmallow import EXCLUDE, Schema, ValidationError, fields
from sqlalchemy.exc import DataError
from werkzeug.exceptions import BadRequest

from app import access
from app.errors import NotFound, RuleViolation
from app.extensions import db
from app.signin_limits import TooManyAttempts, too_many_attempts_response
from app.validation import FieldError
from views.api.schemas import UtcDateTime

log = logging.getLogger(__name__)


def workflow(name: str):
    """A workflow module, imported when first called (the API loads before every step is)."""
    return import_module(f"app.workflow.{name}")


class BodyError(Exception):
    """A body that is not a JSON object at all."""


class ErrorSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    message = fields.String(required=True)
    errors = fields.Dict(keys=fields.String(), values=fields.Raw())


class RefusalSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    message = fields.String(required=True)
    rule = fields.String(required=True, metadata={"description": "Rule code of DOMAIN.md"})
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))


def _json(status, payload):
    return BaseApi.response(status, **payload)


def error_response(exc):
    """The contract's answer for a known error, or None for anything else."""
    if isinstance(exc, TooManyAttempts):
        return too_many_attempts_response(exc)
    if isinstance(exc, RuleViolation):
        return _json(getattr(exc, "http_status", 422), exc.as_dict())
    if isinstance(exc, FieldError):
        return _json(400, exc.as_dict())
    if isinstance(exc, ValidationError):
        return _json(400, {"message": str(_l("The request has invalid fields.")),
                           "errors": _string_keys(exc.messages)})
    if isinstance(exc, (NotFound, OverflowError, DataError)):
        # DataError / OverflowError: an id in the path beyond what the database can hold.
        return _json(404, {"message": str(_l("Not found")), "errors": {}})
    if isinstance(exc, (BodyError, BadRequest)):
        return _json(400, {"message": str(_l("The body must be a JSON object.")),
                           "errors": {"_body": [str(_l("Not a JSON object."))]}})
    if type(exc).__name__ == "KobeImportError":
        # All or nothing: every wrong row is listed, nothing was saved.
        return _json(400, {"message": exc.as_dict()["message"], "errors": {"rows": exc.errors}})
    return None


def _string_keys(messages):
    if isinstance(messages, dict):
        return {str(k): _string_keys(v) for k, v in messages.items()}
    if isinstance(messages, list):
        return messages
    return [str(messages)]


def api_step(f):
    """Map the workflow's typed errors to the contract; roll back whatever was half done."""

    @functools.wraps(f)
    def wrapper(self, *args, **kwargs):
        try:
            return f(self, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001  (every error gets an answer, never a 500)
            db.session.rollback()
            answer = error_response(exc)
            if answer is None:
                raise
            return answer

    return wrapper


def json_body(schema: Schema, partial=False):
    """The request body loaded with `schema`; BodyError / ValidationError otherwise."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BodyError()
    return schema.load(data, partial=partial)


ERROR_RESPONSES = {
    "ApiError": {
        "description": "Malformed request: the fields in `errors` are wrong or missing",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    },
    "Refused": {
        "description": "Refused by a rule of the routine; `rule` is its code",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Refusal"}}},
    },
}


class ReservkortApiMixin:
    """Answers of the contract for FAB's own error helpers too."""

    def response_400(self, message=None):
        if isinstance(message, dict):
            return _json(400, {"message": str(_l("The request has invalid fields.")),
                               "errors": _string_keys(message)})
        return _json(400, {"message": str(message or _l("Bad request")), "errors": {}})

    def response_422(self, message=None):
        if isinstance(message, dict):
            # FAB's own models loader says 422 for malformed fields; the contract says 400.
            return self.response_400(message)
        return _json(422, {"message": str(message or _l("Could not be saved")),
                           "rule": "not_saved", "errors": {}})

    def operation_helper(self, path=None, operations=None, methods=None, func=None, **kwargs):
        super().operation_helper(path=path, operations=operations, methods=methods, func=func,
                                 **kwargs)
        for operation in operations.values():
            _integer_ids(operation)
            # Every endpoint is protected by role: 401 without a login, 403 without the right;
            # a malformed request is 400 (the guard of app.client_input answers it first).
            responses = operation.setdefault("responses", {})
            for code in ("400", "401", "403"):
                responses.setdefault(code, {"$ref": f"#/components/responses/{code}"})
            if "pk" in (path or ""):
                responses.setdefault("404", {"$ref": "#/components/responses/404"})

    def add_apispec_components(self, api_spec):
        super().add_apispec_components(api_spec)
        for name, schema in (("Error", ErrorSchema), ("Refusal", RefusalSchema)):
            if name not in api_spec.components.schemas:
                api_spec.components.schema(name, schema=schema)
        for name, response in ERROR_RESPONSES.items():
            if name not in api_spec.components.responses:
                api_spec.components.response(name, response)


class StepApi(ReservkortApiMixin, BaseApi):
    """An API made of workflow steps."""


class ContractSchemaConverter(access.MaskingSchemaConverter):
    """FAB's model schemas, shaped as the contract says: times in ISO 8601 with their offset
    (the database keeps naive UTC), and a nullable relation (a person without a unit) is
    documented as nullable."""

    def _column2field(self, datamodel, column, nested=True, parent_schema_name=None):
        if not datamodel.is_relation(column.name) and datamodel.is_datetime(column.name):
            nullable = datamodel.is_nullable(column.name)
            return UtcDateTime(allow_none=nullable, required=not nullable, dump_only=True)
        field = super()._column2field(datamodel, column, nested=nested,
                                      parent_schema_name=parent_schema_name)
        if isinstance(field, fields.Nested) and datamodel.is_relation_many_to_one(column.name) \
                and datamodel.is_nullable(column.name):
            field.allow_none = True
        return field


class RegisterApi(ReservkortApiMixin, ModelRestApi):
    """FAB's model API for the registers (list, get, info; writes are overridden per class).
    Every serialised row, whatever columns the client chose, goes through the access policy;
    the datamodel of each is an `access.AccessInterface` (searches, order)."""

    page_size = 25
    model2schemaconverter = ContractSchemaConverter

    def pre_get_list(self, data):
        """A total above the count's bound is a lower bound or an estimate: say which."""
        count = data.get("count")
        data["count_exact"] = getattr(count, "exact", True)

    def get_headless(self, pk, **kwargs):
        try:
            return super().get_headless(pk, **kwargs)
        except (OverflowError, DataError):  # an id beyond what the database can hold
            db.session.rollback()
            return self.response_404()



def _integer_ids(node):
    """FAB's generic documents call the integer keys strings; ours are integers."""
    if isinstance(node, dict):
        properties = node.get("properties", {})
        if properties.get("id", {}).get("type") == "string":
            properties["id"] = {"type": "integer"}
        if properties.get("ids", {}).get("items", {}).get("type") == "string":
            properties["ids"]["items"] = {"type": "integer"}
        for value in node.values():
            _integer_ids(value)
    elif isinstance(node, list):
        for value in node:
            _integer_ids(value)
