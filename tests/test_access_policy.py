"""The access policy (app.access) on the REST API's column selection, on writes to a protected
person, on search filters and order, and on uniqueness errors."""

import pytest
from sqlalchemy import select

from app.errors import RuleViolation
from app.extensions import db
from models import AuditEvent, Person
from tests.access_support import EVA, MASK, cleared_login, person_id, rison

EVA_STRINGS = (EVA["name"], EVA["personal_number"], EVA["email"])


def _get(client, api_headers, who, path, **q):
    query = {"q": rison(**q)} if q else None
    response = client.get(f"/api/v1{path}", headers=api_headers(who), query_string=query)
    assert response.status_code == 200, response.get_json()
    return response


def _assert_masked(row):
    for key in ("name", "personal_number", "email"):
        if key in row:
            assert row[key] == (MASK if key == "name" else None), row
    assert row["protected_identity"] is True


@pytest.mark.parametrize("columns", [
    ["id", "name", "personal_number", "email"],
    ["name"],
    ["personal_number"],
    ["email"],
    ["id", "hsa_id", "name", "unit.name"],
])
def test_people_list_is_masked_whatever_columns_are_chosen(app, client, api_headers, columns):
    eva = person_id(EVA["hsa_id"])
    for who in ("Servicecenter", "Admin"):
        response = _get(client, api_headers, who, "/people/", columns=columns, page_size=100)
        body = response.get_json()
        assert not [s for s in EVA_STRINGS if s in response.get_data(as_text=True)]
        row = body["result"][body["ids"].index(eva)]
        _assert_masked(row)


@pytest.mark.parametrize("columns", [["name"], ["personal_number", "email"], None])
def test_one_person_is_masked_whatever_columns_are_chosen(app, client, api_headers, columns):
    eva = person_id(EVA["hsa_id"])
    response = _get(client, api_headers, "Servicecenter", f"/people/{eva}",
                    **({"columns": columns} if columns else {}))
    assert not [s for s in EVA_STRINGS if s in response.get_data(as_text=True)]
    _assert_masked(response.get_json()["result"])


def test_a_cleared_login_sees_the_person(app, client, api_headers):
    login = cleared_login(app)
    eva = person_id(EVA["hsa_id"])
    row = _get(client, api_headers, login, f"/people/{eva}",
               columns=["name", "personal_number", "email"]).get_json()["result"]
    assert row == {"name": EVA["name"], "personal_number": EVA["personal_number"],
                   "email": EVA["email"]}


def test_nested_person_columns_on_deviations_are_masked(app, client, api_headers, as_user):
    from app.workflow import deviations

    with as_user("servicecenter"):
        created = deviations.create("manual", "Kortet borttappat", person_hsa_id=EVA["hsa_id"])
    for who in ("Servicecenter", "Chef"):
        for path, q in (("/deviations/", {"columns": ["id", "person.name"]}),
                        ("/deviations/", {"columns": ["person.name", "person.hsa_id"]}),
                        (f"/deviations/{created.id}", {"columns": ["person.name"]}),
                        (f"/deviations/{created.id}", {})):
            response = _get(client, api_headers, who, path, **q)
            assert EVA["name"] not in response.get_data(as_text=True), (who, path, q)
            body = response.get_json()
            row = (body["result"][body["ids"].index(created.id)] if "ids" in body
                   else body["result"])
            assert row["person"]["name"] == MASK


def test_put_answers_a_masked_record_and_cannot_lift_protection(app, client, api_headers):
    eva = person_id(EVA["hsa_id"])
    headers = api_headers("Servicecenter")
    empty = client.put(f"/api/v1/people/{eva}", json={}, headers=headers)
    assert empty.status_code == 422
    assert empty.get_json()["rule"] == "protected_identity_clearance_required"
    assert not [s for s in EVA_STRINGS if s in empty.get_data(as_text=True)]

    lifted = client.put(f"/api/v1/people/{eva}", json={"protected_identity": False},
                        headers=headers)
    assert lifted.status_code == 422
    assert lifted.get_json()["rule"] == "protected_identity_clearance_required"
    assert "protected_identity" in lifted.get_json()["errors"]
    db.session.expire_all()
    assert db.session.get(Person, eva).protected_identity is True


def test_a_cleared_login_may_edit_and_lift_protection(app, client, api_headers):
    login = cleared_login(app)
    eva = person_id(EVA["hsa_id"])
    changed = client.put(f"/api/v1/people/{eva}", json={"protected_identity": False},
                         headers=api_headers(login))
    assert changed.status_code == 200, changed.get_json()
    db.session.expire_all()
    assert db.session.get(Person, eva).protected_identity is False


def test_anyone_who_edits_people_may_turn_protection_on(app, client, api_headers):
    anna = person_id("SE2321000131-E000000000001")
    turned = client.put(f"/api/v1/people/{anna}", json={"protected_identity": True},
                        headers=api_headers("Servicecenter"))
    assert turned.status_code == 200
    _assert_masked(turned.get_json()["result"])
    # Once protected, the same login may not take it back.
    back = client.put(f"/api/v1/people/{anna}", json={"protected_identity": False},
                      headers=api_headers("Servicecenter"))
    assert back.get_json()["rule"] == "protected_identity_clearance_required"


def test_the_workflow_refuses_without_clearance(app, as_user):
    from app.workflow import registers

    eva = person_id(EVA["hsa_id"])
    before = db.session.execute(select(AuditEvent.id)).scalars().all()
    for data in ({}, {"name": "Någon annan"}, {"protected_identity": False}):
        with as_user("servicecenter"), pytest.raises(RuleViolation) as refused:
            registers.save_person(data, eva)
        assert refused.value.rule == "protected_identity_clearance_required"
    assert db.session.execute(select(AuditEvent.id)).scalars().all() == before


def test_the_edit_screen_refuses_without_clearance(app, login):
    eva = person_id(EVA["hsa_id"])
    client = login("Servicecenter")
    shown = client.get(f"/registers/people/edit/{eva}", follow_redirects=True)
    assert EVA["name"] not in shown.get_data(as_text=True)
    client.post(f"/registers/people/edit/{eva}", data={
        "hsa_id": EVA["hsa_id"], "name": "Eva Ek", "protected_identity": ""},
        follow_redirects=True)
    db.session.expire_all()
    assert db.session.get(Person, eva).protected_identity is True


@pytest.mark.both_databases
def test_filters_do_not_confirm_a_protected_person(app, client, api_headers, login, dialect):
    start = "1985063"
    api_q = {"filters": [{"col": "personal_number", "opr": "sw", "value": start}]}
    found = _get(client, api_headers, "Servicecenter", "/people/", **api_q).get_json()
    assert found["count"] == 0 and found["result"] == []
    by_name = {"filters": [{"col": "name", "opr": "ct", "value": "Eva"}]}
    assert _get(client, api_headers, "Admin", "/people/", **by_name).get_json()["count"] == 0

    web = login("Servicecenter").get("/registers/people/list/",
                                     query_string={"_flt_0_personal_number": start})
    assert web.status_code == 200
    assert EVA["hsa_id"] not in web.get_data(as_text=True)

    cleared = cleared_login(app)
    seen = _get(client, api_headers, cleared, "/people/", **api_q).get_json()
    assert seen["count"] == 1 and seen["result"][0]["name"] == EVA["name"]


def test_a_list_ordered_by_name_puts_a_protected_person_where_the_mask_sorts(
        app, client, api_headers):
    body = _get(client, api_headers, "Servicecenter", "/people/", columns=["name"],
                order_column="name", order_direction="asc", page_size=100).get_json()
    names = [row["name"] for row in body["result"]]
    assert MASK in names
    assert names == sorted(names)


def test_uniqueness_errors_do_not_name_the_other_person(app, client, api_headers):
    for field, value in (("personal_number", EVA["personal_number"]),
                         ("hsa_id", EVA["hsa_id"])):
        body = {"hsa_id": "SE2321000131-E000000000777", "name": "Ny Person", field: value}
        answer = client.post("/api/v1/people/", json=body, headers=api_headers("Servicecenter"))
        assert answer.status_code == 400
        assert field in answer.get_json()["errors"]
        assert not [s for s in ("Eva", "Ek") if s in answer.get_data(as_text=True)]
