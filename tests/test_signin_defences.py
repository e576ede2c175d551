"""Sign-in defences: failures only are counted, per account and per real client address, on the
login page, the API login and the attester authentication; a lock with a Swedish message, 429
with Retry-After on the API, and Admin's unlock with an audit row."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from app import clock
from app.demo import hsa
from app.errors import RuleViolation
from app.extensions import db
from app.signin_limits import TooManyAttempts
from models import AuditEvent, SigninFailure

DEMO = "Reservkort-demo-2026"
WRONG = "fel-losenord-123"
ANNA = hsa("E000000000001")
# The counts are SQL: both databases.
pytestmark = pytest.mark.both_databases

LIMITS = {"SIGNIN_ACCOUNT_FAILURES": 3, "SIGNIN_ADDRESS_FAILURES": 50,
          "SIGNIN_WINDOW_SECONDS": 900, "SIGNIN_LOCK_MINUTES": 30}


@pytest.fixture
def app_config():
    return dict(LIMITS)


def api_login(client, username, password, address=None):
    headers = {"X-Forwarded-For": address} if address else {}
    return client.post("/api/v1/security/login", headers=headers, json={
        "username": username, "password": password, "provider": "db", "refresh": True})


def web_login(client, username, password, address=None):
    headers = {"X-Forwarded-For": address} if address else {}
    return client.post("/login/", headers=headers,
                       data={"username": username, "password": password})


def test_api_login_failures_lock_the_account_with_429_and_retry_after(client):
    for _ in range(3):
        assert api_login(client, "televaxeln", WRONG).status_code == 401
    refused = api_login(client, "televaxeln", DEMO)  # even the right password, while locked
    assert refused.status_code == 429
    body = refused.get_json()
    assert body["rule"] == "too_many_attempts"
    assert "låst" in body["message"] and "Admin" in body["message"]
    assert 0 < int(refused.headers["Retry-After"]) <= 30 * 60


def test_the_login_page_lock_is_a_swedish_429_page(client):
    for _ in range(3):
        assert web_login(client, "chef", WRONG).status_code in (200, 302)
    page = web_login(client, "chef", DEMO)
    assert page.status_code == 429
    assert "För många misslyckade inloggningar" in page.get_data(as_text=True)
    assert int(page.headers["Retry-After"]) > 0


def test_an_unknown_account_name_is_locked_the_same_way(client):
    answers = [api_login(client, "finns-inte", WRONG).status_code for _ in range(4)]
    assert answers == [401, 401, 401, 429]


def test_a_success_before_the_lock_clears_the_account_failures(client):
    for _ in range(2):
        api_login(client, "chef", WRONG)
    assert api_login(client, "chef", DEMO).status_code == 200
    for _ in range(2):
        api_login(client, "chef", WRONG)
    assert api_login(client, "chef", DEMO).status_code == 200


def test_the_lock_ends_after_its_time(client, set_now):
    start = set_now("2026-12-01T08:00:00")
    for _ in range(3):
        api_login(client, "chef", WRONG)
    assert api_login(client, "chef", DEMO).status_code == 429
    set_now(start + timedelta(minutes=31))
    assert api_login(client, "chef", DEMO).status_code == 200


class TestProductionLimits:
    """As deployed: Flask-Limiter on, many people behind one TLS proxy."""

    @pytest.fixture
    def app_config(self):
        return {**LIMITS, "RATELIMIT_ENABLED": True, "SIGNIN_ADDRESS_FAILURES": 3,
                "SIGNIN_ACCOUNT_FAILURES": 10, "TRUSTED_PROXIES": ("127.0.0.1/32",)}

    def test_successful_logins_are_not_counted(self, client):
        codes = {web_login(client, "servicecenter", DEMO).status_code for _ in range(15)}
        assert codes == {302}

    def test_one_clients_failures_do_not_lock_out_the_others_behind_the_proxy(self, client):
        for name in ("admin", "chef", "televaxeln"):
            assert api_login(client, name, WRONG, address="10.1.1.1").status_code == 401
        limited = api_login(client, "servicecenter", DEMO, address="10.1.1.1")
        assert limited.status_code == 429
        assert "den här datorn" in limited.get_json()["message"]
        assert api_login(client, "servicecenter", DEMO, address="10.2.2.2").status_code == 200
        assert web_login(client, "chef", DEMO, address="10.2.2.2").status_code == 302

    def test_a_forwarded_address_from_an_untrusted_peer_is_ignored(self, client):
        for index in range(3):
            client.post("/api/v1/security/login", environ_base={"REMOTE_ADDR": "192.0.2.9"},
                        headers={"X-Forwarded-For": f"10.9.9.{index}"},
                        json={"username": "chef", "password": WRONG, "provider": "db"})
        addresses = set(db.session.execute(select(SigninFailure.address)).scalars())
        assert addresses == {"192.0.2.9"}
        again = client.post("/api/v1/security/login", environ_base={"REMOTE_ADDR": "192.0.2.9"},
                            headers={"X-Forwarded-For": "10.9.9.200"},
                            json={"username": "chef", "password": DEMO, "provider": "db"})
        assert again.status_code == 429


def _application(client, headers, card, password):
    return client.post("/api/v1/issuances/", headers=headers, json={
        "card_serial": card, "recipient_hsa_id": ANNA, "reason": "forgotten",
        "second_attester": {"username": "admin", "password": password},
        "recipient_present": True, "envelope_unopened": True})


def test_guessing_a_password_as_second_attester_is_limited(app, client, api_headers,
                                                           in_stock_card):
    headers = api_headers("Intygsgivare")
    card = in_stock_card().serial
    for _ in range(3):
        assert _application(client, headers, card, WRONG).status_code == 422
    refused = _application(client, headers, card, DEMO)
    assert refused.status_code == 429
    assert refused.get_json()["rule"] == "too_many_attempts"
    assert int(refused.headers["Retry-After"]) > 0
    # The guessed account is locked for its own login too.
    assert api_login(client, "admin", DEMO).status_code == 429


def test_the_attester_check_of_the_workflow_counts_failures(app, as_user):
    from app.workflow import application

    with as_user("intygsgivare1"):
        for _ in range(3):
            with pytest.raises(RuleViolation) as refused:
                application.authenticate_attester("intygsgivare2", WRONG)
            assert refused.value.rule == "attesters_too_few"
        with pytest.raises(TooManyAttempts):
            application.authenticate_attester("intygsgivare2", DEMO)


def test_admin_unlocks_a_locked_account_with_an_audit_row(app, client, login):
    for _ in range(3):
        api_login(client, "chef", WRONG)
    assert login("Servicecenter").get("/admin/signin-locks/").status_code in (302, 403)
    admin = login("Admin")
    page = admin.get("/admin/signin-locks/")
    assert page.status_code == 200 and "chef" in page.get_data(as_text=True)
    answer = admin.post("/admin/signin-locks/unlock", data={"username": "chef"})
    assert answer.status_code == 302
    [row] = db.session.execute(
        select(AuditEvent).where(AuditEvent.action == "signin.unlock")).scalars().all()
    assert row.actor == "admin" and row.after["username"] == "chef"
    assert row.entity_id == app.appbuilder.sm.find_user(username="chef").id
    assert api_login(client, "chef", DEMO).status_code == 200


def test_the_counts_stay_exact_among_thousands_of_other_failures(app, client):
    now = clock.now()
    db.session.execute(SigninFailure.__table__.insert(), [
        {"username": f"user{index % 400}", "address": f"10.0.{index % 200}.{index % 250}",
         "at": now - timedelta(seconds=index % 800)} for index in range(3000)])
    db.session.commit()
    for _ in range(2):
        assert api_login(client, "chef", WRONG).status_code == 401
    assert api_login(client, "chef", DEMO).status_code == 200
    for _ in range(3):
        api_login(client, "chef", WRONG)
    assert api_login(client, "chef", DEMO).status_code == 429
