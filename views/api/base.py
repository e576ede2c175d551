"""What every API of the back office shares: turning the workflow's typed errors into the
answers of the contract (400 malformed, 404 unknown, 422 refused), reading JSON bodies with a
marshmallow schema, the OpenAPI components that describe those answers (each once; every
operation refers to them by code), and the lists' keyset paging (`after=`, `next`)."""

import functools
import logging
from importlib import import_module

from flask import request
from flask_appbuilder.api import BaseApi, ModelRestApi
from flask_appbuilder.exceptions import InvalidOrderByColumnFABException
from flask_babel import lazy_gettext as _l
from marshmallow import Schema, ValidationError, fields
from sqlalchemy.exc import DataError
from werkzeug.exceptions import BadRequest

from app import access
from app.api_contract import (  # noqa: F401  (answers: the APIs of views.api import it here)
    ContractAnswersMixin,
    answer,
    answers,
    string_keys,
    too_many_attempts_response,
)
from app.errors import NotFound, RuleViolation
from app.extensions import db
from app.signin_limits import TooManyAttempts
from app.validation import FieldError
from views.api.schemas import COMPONENTS, MAX_ID, CursorSchema, UtcDateTime
from views.listing import KeysetPage, list_url

log = logging.getLogger(__name__)


def workflow(name: str):
    """A workflow module, imported when first called (the API loads before every step is)."""
    return import_module(f"app.workflow.{name}")


class BodyError(Exception):
    """A body that is not a JSON object at all."""


def error_response(exc):
    """The contract's answer for a known error, or None for anything else."""
    if isinstance(exc, TooManyAttempts):
        return too_many_attempts_response(exc)
    if isinstance(exc, RuleViolation):
        return answer(getattr(exc, "http_status", 422), exc.as_dict())
    if isinstance(exc, FieldError):
        return answer(400, exc.as_dict())
    if isinstance(exc, ValidationError):
        return answer(400, {"message": str(_l("The request has invalid fields.")),
                            "errors": string_keys(exc.messages)})
    if isinstance(exc, (NotFound, OverflowError, DataError)):
        # DataError / OverflowError: an id in the path beyond what the database can hold.
        return answer(404, {"message": str(_l("Not found")), "errors": {}})
    if isinstance(exc, (BodyError, BadRequest)):
        return answer(400, {"message": str(_l("The body must be a JSON object.")),
                            "errors": {"_body": [str(_l("Not a JSON object."))]}})
    if type(exc).__name__ == "KobeImportError":
        # All or nothing: every wrong row is listed, nothing was saved.
        return answer(400, {"message": exc.as_dict()["message"], "errors": {"rows": exc.errors}})
    return None


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


AFTER_PARAMETER = {
    "description": "Keyset cursor: the id of the last row of the previous page (from `next`)",
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
}


class ReservkortApiMixin(ContractAnswersMixin):
    """Answers of the contract for FAB's own error helpers too, and the request and answer
    schemas of views.api.schemas as components of the document."""

    openapi_spec_component_schemas = COMPONENTS

    def operation_helper(self, path=None, operations=None, methods=None, func=None, **kwargs):
        super().operation_helper(path=path, operations=operations, methods=methods, func=func,
                                 **kwargs)
        for operation in operations.values():
            _integer_ids(operation)

    def add_apispec_components(self, api_spec):
        super().add_apispec_components(api_spec)
        if "after" not in api_spec.components.parameters:
            api_spec.components.parameter("after", "query", AFTER_PARAMETER)


# ---- keyset paging --------------------------------------------------------------------------

def cursor_anchor(anchor):
    """The place of the cursor `after` in its list's order (`views.listing.Keyset.anchor`), or a
    400 naming `after` when the cursor is no row of the list the login may see."""
    if anchor is None:
        raise ValidationError({"after": [str(_l(
            "Not a row of this list: follow the next link of the previous page."))]})
    return anchor


def next_page_url(endpoint: str, after) -> str | None:
    """The URL of the page after the row `after` (None: there is no next page), with the
    request's other arguments."""
    if after is None:
        return None
    return list_url(("after", "page"), endpoint=endpoint, after=after)


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
    # Deep pages by keyset: `after=<id>` reads the rows after that row in the list's order
    # (its order columns must be plain columns without NULLs), and the answer's `next` is the
    # URL of the following page. `page` (an offset, inside `q`) stays for the first pages.
    cursor_paging = False

    def get_list_headless(self, **kwargs):
        if not self.cursor_paging:
            return super().get_list_headless(**kwargs)
        rison = kwargs.get("rison") or {}
        try:
            order = self._handle_order_args(rison)
        except InvalidOrderByColumnFABException:
            return super().get_list_headless(**kwargs)  # FAB answers the 400
        try:
            page = self._keyset_page(order)
        except ValidationError as exc:
            return error_response(exc)
        if page is not None:
            kwargs["rison"] = {**rison, KEYSET_PAGE: page}
        return super().get_list_headless(**kwargs)

    def _keyset_page(self, order) -> KeysetPage | None:
        """The keyset page `after=` asks for, read within the list's row scope (its base
        filters, not the client's): a cursor never reaches rows the login may not see."""
        after = CursorSchema().load(request.args.to_dict())["after"]
        if after is None:
            return None
        return KeysetPage(cursor_anchor(
            self.datamodel.keyset_anchor(after, self._base_filters, *order)))

    def _handle_page_args(self, rison_args):
        page, page_size = super()._handle_page_args(rison_args)
        keyset_page = rison_args.get(KEYSET_PAGE)  # a client's `q` may hold the key too
        return (keyset_page if isinstance(keyset_page, KeysetPage) else page), page_size

    def pre_get_list(self, data):
        """A total above the count's bound is a lower bound or an estimate: say which; a list
        paged by keyset links its next page."""
        count = data.get("count")
        data["count_exact"] = getattr(count, "exact", True)
        if self.cursor_paging:
            data["next"] = next_page_url(request.endpoint, getattr(count, "next_after", None))

    def operation_helper(self, path=None, operations=None, methods=None, func=None, **kwargs):
        super().operation_helper(path=path, operations=operations, methods=methods, func=func,
                                 **kwargs)
        if getattr(func, "__name__", "") == "get_list":
            _document_list_page(operations["get"], self.cursor_paging)

    def get_headless(self, pk, **kwargs):
        try:
            return super().get_headless(pk, **kwargs)
        except (OverflowError, DataError):  # an id beyond what the database can hold
            db.session.rollback()
            return self.response_404()



# Where get_list_headless hands the keyset page to _handle_page_args (FAB passes it on as
# the page number).
KEYSET_PAGE = "__keyset_page__"


def _document_list_page(operation: dict, cursor_paging: bool) -> None:
    """FAB's list answer with what the house adds (count_exact, next) and the cursor."""
    content = operation["responses"]["200"]["content"]["application/json"]
    content["schema"] = {"allOf": [content["schema"],
                                   {"$ref": "#/components/schemas/ListPageSchema"}]}
    if cursor_paging:
        operation.setdefault("parameters", []).append("after")  # a component: apispec refers


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
