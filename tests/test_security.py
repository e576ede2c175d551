"""Security hardening: headers and CSP, sessions, password policy, client-certificate login
behind a trusted proxy."""

import re

import pytest
from flask_appbuilder.const import AUTH_REMOTE_USER

from app import accounts
from app.extensions import db

HSA = "SE2321000131-E000000000001"  # Anna Åkesson, no login in the demo data


def test_security_headers_and_csp_without_inline_script(client):
    response = client.get("/login/")
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
    html = response.get_data(as_text=True)
    scripts = re.findall(r"<script([^>]*)>", html)
    assert scripts, "the page has scripts"
    for attributes in scripts:
        assert f'nonce="{nonce}"' in attributes or "src=" in attributes


def test_hsts_only_behind_tls(client):
    assert "Strict-Transport-Security" not in client.get("/login/").headers
    secure = client.get("/login/", base_url="https://reservkort.example.se")
    assert "max-age=" in secure.headers["Strict-Transport-Security"]


def test_session_cookie_is_httponly_samesite_and_expires(login, app):
    test_client = login("Servicecenter")
    cookie = test_client.get_cookie("session")
    assert cookie is not None
    assert cookie.http_only
    assert cookie.same_site == "Lax"
    assert cookie.expires is not None, "the session must expire"


@pytest.mark.parametrize("password", ["kort1", "utan-siffror-alls", "123456789012345"])
def test_password_policy_refuses_weak_passwords(app, password):
    with pytest.raises(ValueError, match="password"):
        accounts.create_user("svag", password, ["Chef"])


class TestClientCertificateLogin:
    @pytest.fixture
    def app_config(self):
        return {"CLIENT_CERT_LOGIN": True, "AUTH_TYPE": AUTH_REMOTE_USER,
                "TRUSTED_PROXIES": ("127.0.0.1/32",)}

    @pytest.fixture
    def card_user(self, app):
        user = accounts.create_user(HSA, "Ett-langt-losen-1", ["Intygsgivare"], hsa_id=HSA)
        db.session.commit()
        return user

    def _login(self, client, peer, verify="SUCCESS"):
        return client.get("/login/", environ_base={"REMOTE_ADDR": peer}, headers={
            "X-SSL-Client-HSA-ID": HSA, "X-SSL-Client-Verify": verify})

    def test_verified_certificate_from_trusted_proxy_logs_in(self, client, card_user):
        response = self._login(client, "127.0.0.1")
        assert response.status_code in (302, 303)
        menu = client.get("/api/v1/menu/", environ_base={"REMOTE_ADDR": "127.0.0.1"})
        assert menu.status_code == 200

    def test_forged_header_from_elsewhere_is_ignored(self, client, card_user):
        self._login(client, "192.0.2.7")
        menu = client.get("/api/v1/menu/", environ_base={"REMOTE_ADDR": "192.0.2.7"})
        assert menu.status_code == 401

    def test_unverified_certificate_is_ignored(self, client, card_user):
        self._login(client, "127.0.0.1", verify="FAILED:certificate revoked")
        assert client.get("/api/v1/menu/").status_code == 401


def test_database_login_stays_available(login):
    assert login("Chef").get("/api/v1/menu/").status_code == 200
