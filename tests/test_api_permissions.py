"""Role × endpoint: without a token every endpoint answers 401; a role without the right gets
403; a role with it gets past the door (here: 200, 400 or 404, since the ids do not exist).
Generated from one table, which must list every route of our APIs."""

import re

import pytest

from tests.test_api_flows import Api

SC, TV, KH, CHEF, IG = "Servicecenter", "Televäxeln", "Korthandläggare", "Chef", "Intygsgivare"
ROLES = ("Admin", SC, TV, KH, CHEF, IG)
ID = "999999"

# (method, path, roles besides Admin that may call it; Admin may call all but ADMIN_DENIED)
ENDPOINTS = [
    ("GET", "/cards/", {SC, KH}),
    ("GET", f"/cards/{ID}", {SC, KH}),
    ("POST", "/cards/batch", {SC}),
    *[(method, path, {SC})
      for resource in ("people", "pickup-points", "units")
      for method, path in (("GET", f"/{resource}/"), ("POST", f"/{resource}/"),
                           ("GET", f"/{resource}/{ID}"),
                           ("PUT", f"/{resource}/{ID}"))],
    ("PUT", "/kobe/register", {SC}),
    ("POST", "/issuances/", {IG}),
    ("GET", "/issuances/", {SC, TV, KH}),
    ("GET", f"/issuances/{ID}", {SC, TV, KH}),
    ("GET", f"/issuances/{ID}/receipt.pdf", {SC, IG}),
    ("POST", f"/issuances/{ID}/approve", {TV}),
    ("POST", f"/issuances/{ID}/reject", {TV}),
    ("POST", f"/issuances/{ID}/receipt", {SC}),
    ("POST", f"/issuances/{ID}/extend", {SC}),
    ("POST", f"/issuances/{ID}/return", {SC}),
    ("POST", f"/issuances/{ID}/block", {SC, KH}),
    ("POST", f"/issuances/{ID}/lost", {SC, KH}),
    ("POST", "/mail-issuances/", {KH}),
    ("POST", f"/mail-issuances/{ID}/dispatched", {KH}),
    ("POST", f"/mail-issuances/{ID}/receipt-returned", {KH}),
    ("POST", f"/mail-issuances/{ID}/certificate-issued", {KH}),
    ("GET", "/deviations/", {SC, CHEF}),
    ("GET", f"/deviations/{ID}", {SC, CHEF}),
    ("POST", f"/deviations/{ID}/notes", {SC, CHEF}),
    ("GET", "/reports/deviations", {SC, CHEF}),
    ("GET", f"/reports/jobs/{ID}", {SC, CHEF}),
    ("GET", f"/reports/jobs/{ID}/file", {SC, CHEF}),
]
# What Admin may not do (separation of duties, app/roles.py).
ADMIN_DENIED = {
    ("POST", "/cards/batch"), ("POST", "/issuances/"), ("POST", f"/issuances/{ID}/approve"),
    ("POST", f"/issuances/{ID}/reject"), ("POST", f"/issuances/{ID}/receipt"),
    ("POST", f"/issuances/{ID}/extend"), ("POST", f"/issuances/{ID}/return"),
    ("POST", f"/issuances/{ID}/block"), ("POST", f"/issuances/{ID}/lost"),
    ("POST", "/mail-issuances/"),
    ("POST", f"/mail-issuances/{ID}/dispatched"),
    ("POST", f"/mail-issuances/{ID}/receipt-returned"),
    ("POST", f"/mail-issuances/{ID}/certificate-issued"), ("POST", f"/deviations/{ID}/notes"),
}
OUR_APIS = {"CardApi", "PersonApi", "PickupPointApi", "UnitApi", "KobeApi", "IssuanceApi",
            "MailIssuanceApi", "DeviationApi", "ReportApi"}


def _call(client, method, path, headers=None):
    body = {} if method in ("POST", "PUT") else None
    return client.open(f"/api/v1{path}", method=method, json=body, headers=headers or {})


def test_the_table_lists_every_route(app):
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] not in OUR_APIS:
            continue
        path = re.sub(r"<[^>]+>", ID, rule.rule.removeprefix("/api/v1"))
        routes |= {(method, path) for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert routes == {(method, path) for method, path, _ in ENDPOINTS}


def test_without_a_token_every_endpoint_is_401(client):
    for method, path, _roles in ENDPOINTS:
        assert _call(client, method, path).status_code == 401, (method, path)


@pytest.mark.parametrize("role", ROLES)
def test_role_reaches_exactly_its_endpoints(client, api_headers, role):
    headers = Api(client, api_headers).headers(role)
    for method, path, roles in ENDPOINTS:
        status = _call(client, method, path, headers).status_code
        admin_may = role == "Admin" and (method, path) not in ADMIN_DENIED
        if admin_may or role in roles:
            assert status in (200, 400, 404), (role, method, path, status)
        else:
            assert status == 403, (role, method, path, status)


def test_a_permission_of_the_public_role_opens_its_endpoint_until_taken_back(app, client):
    """FAB asks before every API call whether the public role holds the permission: the
    answer follows the stored role from one request to the next, and is read as names in one
    statement (no permission-view rows loaded)."""
    from sqlalchemy import event

    from app.extensions import db

    sm = app.appbuilder.sm
    public = sm.find_role(app.config["AUTH_ROLE_PUBLIC"]) or sm.add_role(
        app.config["AUTH_ROLE_PUBLIC"])
    listing = sm.find_permission_view_menu("can_get", "CardApi")
    assert client.get("/api/v1/cards/").status_code == 401
    sm.add_permission_role(public, listing)
    db.session.commit()
    sent = []

    def record(_conn, _cursor, statement, *_args):
        sent.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        assert client.get("/api/v1/cards/").status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    public_reads = [s for s in sent if "ab_permission_view_role" in s]
    assert len(public_reads) == 1, public_reads
    assert "ab_permission_view.id" not in public_reads[0].split("FROM")[0]
    sm.del_permission_role(public, listing)
    db.session.commit()
    assert client.get("/api/v1/cards/").status_code == 401
