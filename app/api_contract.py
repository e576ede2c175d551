"""The shape of the REST API's error answers (API.md): 400 `{message, errors}` for a malformed
request, 422 `{message, rule, errors}` for a refusal, and the OpenAPI components that describe
them. Here in `app/` because the security manager's login endpoint (FAB's SecurityApi) answers
with them too; the APIs of `views/api` build on the same mixin."""

from flask import jsonify
from flask_appbuilder.api import BaseApi
from flask_babel import lazy_gettext as _l
from marshmallow import EXCLUDE, Schema, fields


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
# The response component each error code of an operation refers to (FAB registers 401-404).
ERROR_ANSWERS = {400: "ApiError", 401: "401", 403: "403", 404: "404", 422: "Refused"}


def answer(status, payload):
    """A JSON answer of the contract."""
    return BaseApi.response(status, **payload)


def string_keys(messages):
    """Validation messages with string keys, each value a list (the `errors` of a 400)."""
    if isinstance(messages, dict):
        return {str(k): string_keys(v) for k, v in messages.items()}
    if isinstance(messages, list):
        return messages
    return [str(messages)]


def answers(*codes):
    """Document error answers beyond those of every operation of its API: `@answers(422)` for
    a step a rule may refuse, `@answers(404)` for a body that names something unknown."""

    def mark(f):
        f.documented_errors = codes
        return f

    return mark


def document_errors(operation: dict, codes) -> None:
    """Key `operation`'s responses by string codes (YAML reads `400:` as a number; a number and
    a string of one code would both reach the document, the later one winning) and refer each
    error code it does not describe itself to its component."""
    responses = {str(code): answer for code, answer in operation.get("responses", {}).items()}
    for code in codes:
        responses.setdefault(str(code), {"$ref": f"#/components/responses/{ERROR_ANSWERS[code]}"})
    operation["responses"] = responses


class DocumentedErrorsMixin:
    """Every operation documents its error answers: those of every endpoint of the API
    (`error_answers`; 401 and 403, each endpoint being protected by role), 404 where the path
    names something, and those its method adds with `@answers`."""

    error_answers = (401, 403)

    def operation_helper(self, path=None, operations=None, methods=None, func=None, **kwargs):
        super().operation_helper(path=path, operations=operations, methods=methods, func=func,
                                 **kwargs)
        codes = [*self.error_answers, *((404,) if "{" in (path or "") else ()),
                 *getattr(func, "documented_errors", ())]
        for operation in operations.values():
            document_errors(operation, codes)


class ContractAnswersMixin(DocumentedErrorsMixin):
    """FAB's own error helpers (`response_400`, `response_422`) answering as the contract
    says, and the components that document those answers."""

    # A malformed request is 400 everywhere (the guard of app.client_input answers it first).
    error_answers = (400, 401, 403)

    def response_400(self, message=None):
        if isinstance(message, dict):
            return answer(400, {"message": str(_l("The request has invalid fields.")),
                                "errors": string_keys(message)})
        return answer(400, {"message": str(message or _l("Bad request")), "errors": {}})

    def response_422(self, message=None):
        if isinstance(message, dict):
            # FAB's own models loader says 422 for malformed fields; the contract says 400.
            return self.response_400(message)
        return answer(422, {"message": str(message or _l("Could not be saved")),
                            "rule": "not_saved", "errors": {}})

    def add_apispec_components(self, api_spec):
        super().add_apispec_components(api_spec)
        for name, schema in (("Error", ErrorSchema), ("Refusal", RefusalSchema)):
            if name not in api_spec.components.schemas:
                api_spec.components.schema(name, schema=schema)
        for name, response in ERROR_RESPONSES.items():
            if name not in api_spec.components.responses:
                api_spec.components.response(name, response)


def too_many_attempts_response(exc):
    """The API's answer to app.signin_limits.TooManyAttempts: 429 {"message", "rule"} (and
    `errors` at the field it names) with Retry-After."""
    body = {"message": exc.message, "rule": exc.rule}
    if exc.field:
        body["errors"] = {exc.field: [exc.message]}
    response = jsonify(body)
    response.status_code = 429
    response.headers["Retry-After"] = str(exc.retry_after)
    return response
