"""Property-based check of the API against its own OpenAPI document (schemathesis): for every
role, and for an anonymous caller, every operation of the document is called with a bounded,
derandomised set of generated requests; no answer may be a server error, and every answer's
status code, content type and body must be the ones the document gives for it."""

import os
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.extensions import db
from tests.conftest import ROLE_LOGINS
from tests.test_api_flows import Api

# Per operation and caller; raise it (environment) for a longer exploratory run.
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", 6))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
CALLERS = [*ROLE_LOGINS, None]  # None: anonymous


def _operations(app, headers):
    schema = schemathesis.openapi.from_wsgi("/api/v1/_openapi", app, headers=headers)
    for result in schema.get_all_operations():
        yield result.ok()


def _exercise(operation, headers, calls, failures):
    # Requests that fit the document, and requests that do not (those must be a clean 4xx).
    strategy = (operation.as_strategy(GenerationMode.POSITIVE)
                | operation.as_strategy(GenerationMode.NEGATIVE))

    @given(case=strategy)
    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
              report_multiple_bugs=False)
    def run(case):
        calls[operation.label] += 1
        try:
            case.call_and_validate(headers=headers, checks=CHECKS)
        finally:
            db.session.rollback()  # the test keeps one app context: no failed transaction stays

    try:
        run()
    except Exception as exc:  # noqa: BLE001  (collected: every operation's failure is reported)
        failures.append(f"{operation.label}: {exc}")


def test_openapi_document_describes_every_route(app, client, api_headers):
    spec = client.get("/api/v1/_openapi", headers=Api(client, api_headers).headers("Admin"))
    paths = spec.get_json()["paths"]
    for path in ("/api/v1/issuances/", "/api/v1/issuances/{pk}/approve",
                 "/api/v1/issuances/{pk}/receipt.pdf", "/api/v1/kobe/register",
                 "/api/v1/mail-issuances/{pk}/certificate-issued", "/api/v1/cards/batch",
                 "/api/v1/reports/deviations", "/api/v1/deviations/{pk}/notes"):
        assert path in paths
    apply = paths["/api/v1/issuances/"]["post"]
    assert apply["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "ApplicationSchema")
    assert {"201", "400", "422"} <= set(apply["responses"])


# The steps a rule of the routine may refuse (422 with its rule code).
REFUSABLE = {
    ("post", "/api/v1/issuances/"), ("post", "/api/v1/mail-issuances/"),
    ("post", "/api/v1/deviations/{pk}/notes"),
    *(("post", f"/api/v1/issuances/{{pk}}/{step}")
      for step in ("approve", "reject", "receipt", "extend", "return", "block", "lost")),
    *(("post", f"/api/v1/mail-issuances/{{pk}}/{step}")
      for step in ("dispatched", "receipt-returned", "certificate-issued")),
}
# FAB's own operations: FAB's documents describe their 400 (and 422, 500), or they have none.
FABS_OWN = {"/api/v1/security/login", "/api/v1/security/refresh", "/api/v1/menu/",
            "/api/{version}/_openapi"}
NO_400 = {"/api/v1/menu/", "/api/{version}/_openapi"}
REGISTERS = ("cards", "people", "pickup-points", "units", "deviations")


def _fab_documented(method, path) -> bool:
    """FAB's own documents: its endpoints, and the list and item reads of its model APIs."""
    model_read = method == "get" and any(
        path in (f"/api/v1/{name}/", f"/api/v1/{name}/{{pk}}") for name in REGISTERS)
    return path in FABS_OWN or model_read


def test_every_operation_documents_its_error_answers(app, client, api_headers):
    document = client.get("/api/v1/_openapi", headers=api_headers("Admin")).get_json()
    components = document["components"]["responses"]
    operations = [(method, path, operation) for path, item in document["paths"].items()
                  for method, operation in item.items()]
    assert len(operations) >= 40
    for method, path, operation in operations:
        answers = operation["responses"]
        where = (method, path, sorted(answers))
        # Every endpoint is protected by role; a path naming something may not find it.
        assert {"401", "403"} <= set(answers), where
        assert ("404" in answers) == ("{" in path or path == "/api/v1/cards/batch"), where
        if path not in NO_400:
            assert "400" in answers, where
        if (method, path) in REFUSABLE:
            assert answers["422"] == {"$ref": "#/components/responses/Refused"}, where
        for answer in answers.values():
            if "$ref" in answer:
                assert answer["$ref"].rsplit("/", 1)[-1] in components, where
    # A malformed request to one of ours is the contract's {"message", "errors"}, not FAB's
    # generic answer, and the Kobe import lists its wrong rows.
    for method, path, operation in operations:
        if not _fab_documented(method, path) and path != "/api/v1/kobe/register":
            assert operation["responses"]["400"] == {
                "$ref": "#/components/responses/ApiError"}, (method, path)
    kobe = document["paths"]["/api/v1/kobe/register"]["put"]["responses"]["400"]
    assert {"$ref": "#/components/schemas/KobeImportErrorSchema"} in kobe["content"][
        "application/json"]["schema"]["anyOf"]
    assert components["ApiError"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/Error")


@pytest.mark.parametrize("role", CALLERS, ids=lambda role: role or "anonymous")
def test_generated_requests_keep_to_the_document(app, client, api_headers, role):
    _keeps_to_the_document(app, client, api_headers, role)


# PostgreSQL refuses what SQLite takes (NUL characters, out-of-range numbers): the two roles
# that reach the most operations run there too.
@pytest.mark.postgresql_only
@pytest.mark.parametrize("role", ["Admin", "Servicecenter"])
def test_generated_requests_keep_to_the_document_on_postgresql(app, client, api_headers, role,
                                                               dialect):
    _keeps_to_the_document(app, client, api_headers, role)


def _keeps_to_the_document(app, client, api_headers, role):
    api = Api(client, api_headers)
    headers = api.headers(role) if role else {}
    operations = list(_operations(app, api.headers("Admin")))
    assert len(operations) >= 30
    calls, failures = Counter(), []
    for operation in operations:
        _exercise(operation, headers, calls, failures)
    assert not failures, "\n\n".join(failures)
    assert {op.label for op in operations} == {label for label, n in calls.items() if n}


def test_swagger_ui_is_served_from_local_assets_for_admin(login):
    import re

    page = login("Admin").get("/swagger/v1")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "swagger-ui-bundle.js" in html
    assert not re.search(r"""(src|href)=["']https?://""", html)


def test_swagger_ui_is_for_admin_only(login):
    assert login("Servicecenter").get("/swagger/v1").status_code in (302, 403)
