"""Property-based check of the API against its own OpenAPI document (schemathesis): for every
operation of ours a bounded, derandomised set of generated requests, authenticated, must never
give a server error and every answer must match the schema the document gives for it."""

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from tests.test_api_flows import Api

OURS = (r"^/api/v1/(cards|people|pickup-points|units|kobe|issuances|mail-issuances|deviations"
        r"|reports)/")
EXAMPLES = 5


def _operations(app, headers, path_regex=OURS):
    schema = schemathesis.openapi.from_wsgi("/api/v1/_openapi", app, headers=headers)
    for result in schema.include(path_regex=path_regex).get_all_operations():
        yield result.ok()


def _exercise(operation, headers):
    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def run(case):
        case.call_and_validate(headers=headers,
                               checks=[not_a_server_error, response_schema_conformance])

    run()


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


# Admin reaches everything; a manager also through the row-level filter of deviations.
@pytest.mark.parametrize("role,paths,at_least", [
    ("Admin", OURS, 30),
    ("Chef", r"^/api/v1/(deviations|reports)/", 4),
])
def test_generated_requests_never_fail_the_server(app, client, api_headers, role, paths,
                                                  at_least):
    api = Api(client, api_headers)
    operations = list(_operations(app, api.headers("Admin"), paths))
    assert len(operations) >= at_least
    for operation in operations:
        _exercise(operation, api.headers(role))


def test_swagger_ui_is_served_from_local_assets_for_admin(login):
    import re

    page = login("Admin").get("/swagger/v1")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "swagger-ui-bundle.js" in html
    assert not re.search(r"""(src|href)=["']https?://""", html)


def test_swagger_ui_is_for_admin_only(login):
    assert login("Servicecenter").get("/swagger/v1").status_code in (302, 403)
