"""One decorator for a workflow step of the API: its route, permission, error mapping and the
OpenAPI operation, which would otherwise be the same fifteen lines of YAML for every step."""

from flask_appbuilder.api import expose, protect, safe
from flask_appbuilder.security.decorators import permission_name

from views.api.base import answers, api_step

PATH_ID = "  - {in: path, name: pk, required: true, schema: {type: integer}}\n"


def _operation(summary, answer, body, status, answer_schema, has_id, body_required=True) -> str:
    """The YAML FAB's apispec reads after the docstring's `---`."""
    text = f"post:\n  summary: {summary}\n"
    if has_id:
        text += "  parameters:\n" + PATH_ID
    if body:
        text += (f"  requestBody:\n    required: {str(body_required).lower()}\n    content:\n"
                 "      application/json:\n        schema:\n"
                 f"          $ref: '#/components/schemas/{body}'\n")
    return text + (f"  responses:\n    {status}:\n      description: {answer}\n"
                   "      content:\n        application/json:\n          schema:\n"
                   f"            $ref: '#/components/schemas/{answer_schema}'\n")


def step(rule, permission, *, summary, answer, body=None, body_required=True, status=200,
         answer_schema="StepResultSchema"):
    """A POST step at `rule` under `permission`: a refused rule answers 422; the body (when
    `body` names a schema; one that may be left out is not `body_required`) and the answer
    are documented; the method's docstring says what the step is."""

    def decorate(f):
        f.__doc__ = (f"{(f.__doc__ or '').strip()}\n---\n"
                     + _operation(summary, answer, body, status, answer_schema, "<" in rule,
                                      body_required))
        for wrap in (api_step, permission_name(permission), safe, protect(),
                     expose(rule, methods=["POST"]), answers(422)):
            f = wrap(f)
        return f

    return decorate
