"""The role × screen × action matrix, generated from one table, and CSRF on every form."""

import re

import pytest

SC, TV, KH, CHEF, IG, ADMIN = (
    "Servicecenter", "Televäxeln", "Korthandläggare", "Chef", "Intygsgivare", "Admin")
ROLES = (SC, TV, KH, CHEF, IG, ADMIN)

# (method, url, roles allowed). Every other role must get 403. Admin does not do the daily work
# (separation of duties, app/roles.py).
MATRIX = [
    ("GET", "/stock/cards/list/", {SC, ADMIN}),
    ("GET", "/stock/register/", {SC}),
    ("GET", "/stock/pickup-points/list/", {SC, ADMIN}),
    ("GET", "/issuances/list/", {SC, KH, ADMIN}),
    ("GET", "/receipts/", {SC}),
    ("GET", "/returns/", {SC}),
    ("GET", "/returns/scan/", {SC}),
    ("GET", "/approval/", {TV}),
    ("GET", "/registers/people/list/", {SC, ADMIN}),
    ("GET", "/registers/units/list/", {SC, ADMIN}),
    ("GET", "/registers/kobe/list/", {SC, ADMIN}),
    ("GET", "/registers/kobe-import/", {SC, ADMIN}),
    ("GET", "/deviations/list/", {SC, CHEF, ADMIN}),
    ("GET", "/deviations/report/", {SC, CHEF, ADMIN}),
    ("GET", "/mail-flow/", {KH}),
    ("GET", "/audit-log/list/", {ADMIN}),
    ("GET", "/organisation-types/list/", {ADMIN}),
    ("GET", "/admin/jobs/", {ADMIN}),
    ("GET", "/admin/outbox/list/", {ADMIN}),
    ("GET", "/admin/user-links/", {ADMIN}),
    ("GET", "/admin/signin-locks/", {ADMIN}),
    ("POST", "/admin/signin-locks/unlock", {ADMIN}),
    ("POST", "/admin/user-links/1/link", {ADMIN}),
    ("POST", "/admin/user-links/1/remove", {ADMIN}),
    ("GET", "/admin/signin-locks/", {ADMIN}),
    ("POST", "/admin/signin-locks/unlock", {ADMIN}),
    ("GET", "/users/list/", {ADMIN}),
    ("GET", "/ansokan/", {IG}),
    ("POST", "/stock/cards/1/move", {SC}),
    ("POST", "/stock/cards/1/lost", {SC}),
    ("POST", "/stock/register/", {SC}),
    ("POST", "/issuances/1/extend", {SC}),
    ("POST", "/issuances/1/return", {SC}),
    ("POST", "/issuances/1/receipt", {SC}),
    ("GET", "/issuances/1/scan", {SC, ADMIN}),  # the scanned receipt
    ("POST", "/issuances/1/block", {SC, KH}),
    ("POST", "/receipts/", {SC}),
    ("POST", "/returns/", {SC}),
    ("POST", "/returns/scan/start", {SC}),
    ("POST", "/returns/scan/", {SC}),
    ("POST", "/returns/scan/end", {SC}),
    ("POST", "/approval/1/approve", {TV}),
    ("POST", "/approval/1/reject", {TV}),
    ("POST", "/mail-flow/prepare", {KH}),
    ("POST", "/mail-flow/issuance/1/dispatched", {KH}),
    ("POST", "/deviations/note/1", {SC, CHEF}),
    ("POST", "/deviations/close/1", {SC, CHEF}),
    ("POST", "/admin/jobs/resend/1", {ADMIN}),
]


@pytest.fixture
def clients(login):
    return {role: login(role) for role in ROLES}


def test_role_screen_action_matrix(clients):
    wrong = []
    for method, url, allowed in MATRIX:
        for role in ROLES:
            response = clients[role].open(url, method=method, data={})
            status = response.status_code
            if role in allowed:
                if status in (403, 500) or (status in (301, 302) and "/login" in
                                            response.headers.get("Location", "")):
                    wrong.append(f"{role} {method} {url}: {status}, expected access")
            elif status != 403:
                wrong.append(f"{role} {method} {url}: {status}, expected 403")
    assert not wrong, "\n".join(wrong)


def test_every_back_office_url_is_in_the_matrix(app):
    """A new screen must get a row in the table above (or be FAB's own)."""
    covered = {re.sub(r"/1(/|$)", "/<>\\1", url) for _, url, _ in MATRIX}
    prefixes = {u.split("/")[1] for u in covered}
    missing = []
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<[^>]+>", "<>", rule.rule)
        top = path.split("/")[1]
        if top in prefixes and path.endswith("/") and "<>" not in path and path not in covered:
            if "GET" in rule.methods and not path.startswith("/api/"):
                missing.append(path)
    allowed_extra = {"/stock/cards/", "/issuances/", "/deviations/", "/registers/",
                     "/users/userinfo/"}
    assert not [m for m in missing if m not in allowed_extra and not m.endswith(("/add/",))]


class TestCsrf:
    @pytest.fixture
    def app_config(self):
        return {"WTF_CSRF_ENABLED": True}

    def test_every_state_changing_form_refuses_a_post_without_token(self, app, login):
        test_client = app.test_client()
        # Log in with the token, as a browser would.
        page = test_client.get("/login/").get_data(as_text=True)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        test_client.post("/login/", data={"username": "admin", "password":
                                          "Reservkort-demo-2026", "csrf_token": token})
        assert test_client.get("/api/v1/menu/").status_code == 200
        checked = 0
        for rule in app.url_map.iter_rules():
            if "POST" not in rule.methods or rule.rule.startswith(("/api/", "/login")):
                continue
            url = re.sub(r"<(int:)?[^>]+>", "1", rule.rule)
            response = test_client.post(url, data={"confirm": "yes", "reason": "x"})
            assert response.status_code == 400, f"{url} accepted a POST without CSRF token"
            checked += 1
        assert checked >= 25

    def test_login_without_token_does_not_log_in(self, app):
        test_client = app.test_client()
        test_client.post("/login/", data={"username": "admin",
                                          "password": "Reservkort-demo-2026"})
        assert test_client.get("/api/v1/menu/").status_code == 401
