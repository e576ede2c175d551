"""Every flow of the routine walked through the REST API alone: stock, application with two
attesters, approval, receipt, extension, return; rejection; blocking; the registered-mail flow."""

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from app import clock
from app.demo import hsa
from models import OutboxMessage, ReserveCard

ANNA = hsa("E000000000001")  # active ordinary card, the manager's unit
BJORN = hsa("E000000000002")  # ordinary card ordered


# Tokens name the user by id, the same in every copy of the demo database, and are signed with
# the test secret: one login per role serves the whole session.
_TOKENS = {}


class Api:
    """A small client: one JWT per role, JSON in and out."""

    def __init__(self, client, api_headers):
        self.client = client
        self._headers = api_headers

    def headers(self, who):
        if who not in _TOKENS:
            _TOKENS[who] = self._headers(who)
        return _TOKENS[who]

    def call(self, method, who, path, **kwargs):
        return self.client.open(f"/api/v1{path}", method=method, headers=self.headers(who),
                                **kwargs)

    def get(self, who, path, **kwargs):
        return self.call("GET", who, path, **kwargs)

    def post(self, who, path, json=None, **kwargs):
        return self.call("POST", who, path, json=json, **kwargs)

    def put(self, who, path, json=None, **kwargs):
        return self.call("PUT", who, path, json=json, **kwargs)

    def ok(self, response, status=200):
        assert response.status_code == status, (response.status_code, response.get_json())
        return response.get_json()

    # -- steps used by many tests --

    def free_card(self, loa="LOA2"):
        """A fresh sealed card registered through the API."""
        self._serial = getattr(self, "_serial", 880000000) + 1
        serial = str(self._serial)
        self.ok(self.post("Servicecenter", "/cards/batch", {
            "serials": [serial], "product_code": "473", "loa": loa,
            "expires_on": (clock.today() + timedelta(days=900)).isoformat(),
            "pickup_point_id": 1}), 201)
        return serial

    def application(self, recipient=ANNA, reason="forgotten", card=None, second="intygsgivare2",
                    password="Reservkort-demo-2026", by="Intygsgivare", **extra):
        body = {
            "card_serial": card or self.free_card(), "recipient_hsa_id": recipient,
            "reason": reason, "second_attester": {"username": second, "password": password},
            "password": "Reservkort-demo-2026",
            "recipient_present": True, "envelope_unopened": True, **extra,
        }
        return self.post(by, "/issuances/", body)

    def apply(self, **kwargs):
        return self.ok(self.application(**kwargs), 201)

    def approve(self, issuance_id, **checks):
        body = {"kobe_reference": "KOBE-4711", "checks": {
            "identity": True, "reason": True, "card": True, "attesters": True,
            "card_or_order": True, "reserve_order": True, **checks}}
        return self.post("Televäxeln", f"/issuances/{issuance_id}/approve", body)

    def approved(self, **kwargs):
        created = self.apply(**kwargs)
        self.ok(self.approve(created["id"]))
        return created


@pytest.fixture
def api(client, api_headers):
    return Api(client, api_headers)


def test_stock_batch_is_all_or_none(api, session):
    created = api.ok(api.post("Servicecenter", "/cards/batch", {
        "serials": ["770000001", "770000002", "770000003"], "product_code": "573",
        "loa": "LOA2", "expires_on": "2031-01-31", "pickup_point_id": 2}), 201)
    assert created == {"created": 3}
    starts = "(filters:!((col:serial,opr:sw,value:'77000000')))"
    listed = api.ok(api.get("Korthandläggare", "/cards/", query_string={"q": starts}))
    assert listed["count"] == 3
    assert {row["pickup_point_id"] for row in listed["result"]} == {2}

    again = api.post("Servicecenter", "/cards/batch", {
        "serials": ["770000004", "770000001"], "product_code": "573", "loa": "LOA2",
        "expires_on": "2031-01-31", "pickup_point_id": 2})
    assert again.status_code == 400
    assert "serials" in again.get_json()["errors"]
    assert session.execute(
        select(ReserveCard).where(ReserveCard.serial == "770000004")).first() is None


def test_in_person_flow_to_return(api, set_now):
    set_now("2026-11-02T09:00:00")
    serial = api.free_card()
    created = api.apply(card=serial, reason="lost_stolen_damaged")
    assert created["status"] == "awaiting_approval"
    assert created["valid_until"] == "2026-12-02"
    assert created["receipt_due"] == "2026-11-09"
    issuance_id = created["id"]

    shown = api.ok(api.get("Televäxeln", f"/issuances/{issuance_id}"))
    assert shown["card"]["serial"] == serial
    assert shown["recipient"]["hsa_id"] == ANNA
    assert [a["name"] for a in shown["attesters"]] == ["Gustav Gran", "Helena Håkansson"]
    assert [h["action"] for h in shown["history"]][:1] == ["issuance.apply"]

    assert api.ok(api.approve(issuance_id))["status"] == "approved"
    api.ok(api.post("Servicecenter", f"/issuances/{issuance_id}/receipt"))
    after_receipt = api.ok(api.get("Servicecenter", f"/issuances/{issuance_id}"))
    assert after_receipt["receipt_received_at"]

    extended = api.ok(api.post("Servicecenter", f"/issuances/{issuance_id}/extend",
                               {"same_reason": True}))
    assert extended["valid_until"] == "2027-01-01"
    assert extended["status"] == "extended"

    returned = api.ok(api.post("Servicecenter", f"/issuances/{issuance_id}/return",
                               {"then": "restock"}))
    assert returned["status"] == "returned"
    final = api.ok(api.get("Servicecenter", f"/issuances/{issuance_id}"))
    assert final["extension"]["new_valid_until"] == "2027-01-01"
    actions = [h["action"] for h in final["history"]]
    for action in ("issuance.apply", "issuance.approve", "issuance.extend", "issuance.return"):
        assert action in actions
    assert final["history"][0]["at"].endswith("+00:00")


def test_rejection(api):
    created = api.apply()
    rejected = api.ok(api.post("Televäxeln", f"/issuances/{created['id']}/reject",
                               {"reason": "Kortnumret stämmer inte i Kobe"}))
    assert rejected["status"] == "rejected"
    shown = api.ok(api.get("Servicecenter", f"/issuances/{created['id']}"))
    assert shown["rejection_reason"] == "Kortnumret stämmer inte i Kobe"


def test_block_by_card_handler(api):
    created = api.approved()
    blocked = api.ok(api.post("Korthandläggare", f"/issuances/{created['id']}/block",
                              {"reason": "Kortet borttappat"}))
    assert blocked["status"] == "blocked"
    listed = api.ok(api.get("Servicecenter", "/issuances/", query_string={"status": "blocked"}))
    assert [row["id"] for row in listed["result"]] == [created["id"]]


def test_registered_mail_flow(api, session):
    serial = api.free_card()
    prepared = api.ok(api.post("Korthandläggare", "/mail-issuances/", {
        "card_serial": serial, "recipient_hsa_id": BJORN, "reason": "awaiting_new_card",
        "address": "Storgatan 1, 432 44 Varberg",
        "justification": "Arbetar på distans i Norrland, ingen behörig administratör"}), 201)
    assert prepared["status"] == "prepared"
    issuance_id = prepared["id"]
    steps = [("dispatched", {"registered_mail_number": "RR123456789SE"}, "sent"),
             ("receipt-returned", None, "receipt_received"),
             ("certificate-issued", None, "active")]
    for path, body, status in steps:
        answer = api.ok(api.post("Korthandläggare", f"/mail-issuances/{issuance_id}/{path}",
                                 body))
        assert answer["status"] == status
    shown = api.ok(api.get("Korthandläggare", f"/issuances/{issuance_id}"))
    assert shown["id_method"] == "Identifierad med rekommenderad post"
    assert shown["registered_mail_number"] == "RR123456789SE"
    bodies = session.execute(
        select(OutboxMessage.body_text).where(OutboxMessage.issuance_id == issuance_id)
    ).scalars().all()
    assert any("minasidor.siths.se" in body for body in bodies)


def test_receipt_pdf_for_attesters_and_servicecenter(api):
    created = api.apply()
    for who in ("Intygsgivare", "intygsgivare2", "Servicecenter"):
        response = api.get(who, f"/issuances/{created['id']}/receipt.pdf")
        assert response.status_code == 200, who
        assert response.mimetype == "application/pdf"
        assert response.data.startswith(b"%PDF")
    other = api.apply(recipient=BJORN, reason="awaiting_new_card")
    # intygsgivare2 attested both; a Servicecenter-less attester of neither is refused
    assert api.get("Televäxeln", f"/issuances/{other['id']}/receipt.pdf").status_code == 403


def test_list_is_paged_with_a_fixed_number_of_queries(api, app):
    from sqlalchemy import event

    from app.extensions import db

    api.apply()
    api.apply(recipient=BJORN, reason="awaiting_new_card")
    statements = []

    def count(*_args):
        statements.append(1)

    headers = api.headers("Servicecenter")
    api.client.get("/api/v1/issuances/", headers=headers)  # warm: the login's own queries
    event.listen(db.engine, "before_cursor_execute", count)
    try:
        page = api.client.get("/api/v1/issuances/", headers=headers,
                              query_string={"page_size": 1})
        one = len(statements)
        statements.clear()
        page2 = api.client.get("/api/v1/issuances/", headers=headers,
                               query_string={"page_size": 50})
        many = len(statements)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert page.get_json()["count"] == 2
    assert len(page2.get_json()["result"]) == 2
    assert many == one


def test_protected_identity_is_masked_unless_cleared(api, app, session):
    from app import accounts
    from models import Person

    eva = session.execute(select(Person).where(Person.hsa_id == hsa("E000000000005"))).scalar_one()
    listed = api.ok(api.get("Servicecenter", f"/people/{eva.id}"))["result"]
    assert listed["name"] != "Eva Ek" and listed["personal_number"] is None
    user = app.appbuilder.sm.find_user(username="servicecenter")
    accounts.link_user(user, session.get(Person, user_person_id(session, user)),
                       protected_identity_clearance=True)
    session.commit()
    cleared = api.ok(api.get("Servicecenter", f"/people/{eva.id}"))["result"]
    assert cleared["name"] == "Eva Ek"


def user_person_id(session, user):
    from models import AccountLink

    return session.execute(
        select(AccountLink.person_id).where(AccountLink.user_id == user.id)).scalar_one()


def test_registers_write_with_audit(api, session):
    from models import AuditEvent

    unit = api.ok(api.post("Admin", "/units/", {
        "name": "Kungsbacka vårdcentral", "hsa_id": "SE2321000131-E000000000201",
        "org_type_code": "region"}), 201)
    person = api.ok(api.post("Servicecenter", "/people/", {
        "hsa_id": "se2321000131-e000000000099", "personal_number": "19800101-1231x"}), 400)
    assert set(person["errors"]) >= {"personal_number", "name"}
    added = api.ok(api.post("Servicecenter", "/people/", {
        "hsa_id": "se2321000131-e000000000099", "name": "Olle Ost",
        "personal_number": "19710203-2336", "unit_id": unit["id"]}), 201)
    assert added["result"]["hsa_id"] == "SE2321000131-E000000000099"
    changed = api.ok(api.put("Servicecenter", f"/people/{added['id']}", {"email": "olle@ex.se"}))
    assert changed["result"]["email"] == "olle@ex.se"
    duplicate = api.post("Servicecenter", "/people/", {
        "hsa_id": "SE2321000131-E000000000099", "name": "Olle Igen"})
    assert duplicate.status_code == 400 and "hsa_id" in duplicate.get_json()["errors"]
    point = api.ok(api.post("Servicecenter", "/pickup-points/", {
        "name": "Reception Kungsbacka", "min_stock": 3}), 201)
    assert point["result"]["min_stock"] == 3
    actions = session.execute(select(AuditEvent.action)).scalars().all()
    for action in ("unit.create", "person.create", "person.update", "pickup_point.create"):
        assert action in actions


def test_kobe_register_json_and_csv(api, demo_person, session):
    updated = api.ok(api.put("Servicecenter", "/kobe/register", [
        {"hsa_id": hsa("E000000000004"), "ordinary_card": "ordered", "reserve_card_order": False},
        {"hsa_id": hsa("E000000000010"), "ordinary_card": "none", "reserve_card_order": True},
    ]))
    assert updated == {"updated": 2}
    session.expire_all()
    assert demo_person("David").kobe.ordinary_card == "ordered"
    csv_body = ("hsa_id,ordinary_card,reserve_card_order\n"
                f"{hsa('E000000000004')},active,false\n")
    done = api.ok(api.put("Admin", "/kobe/register", data=csv_body, content_type="text/csv"))
    assert done == {"updated": 1}
    session.expire_all()
    assert demo_person("David").kobe.ordinary_card == "active"


def test_kobe_register_refuses_all_when_a_row_is_wrong(api, demo_person, session):
    answer = api.put("Servicecenter", "/kobe/register", {"rows": [
        {"hsa_id": hsa("E000000000004"), "ordinary_card": "none", "reserve_card_order": True},
        {"hsa_id": "nonsense", "ordinary_card": "maybe", "reserve_card_order": "perhaps"},
    ]})
    assert answer.status_code == 400
    rows = answer.get_json()["errors"]["rows"]
    assert {(r["row"], r["field"]) for r in rows} == {
        (2, "hsa_id"), (2, "ordinary_card"), (2, "reserve_card_order")}
    session.expire_all()
    assert demo_person("David").kobe.ordinary_card == "none"
    bad_csv = api.put("Servicecenter", "/kobe/register", data="a,b\n1,2\n",
                      content_type="text/csv")
    assert bad_csv.status_code == 400


def test_dates_in_the_past_are_iso(api):
    created = api.apply()
    assert date.fromisoformat(created["valid_until"]) >= clock.today()
