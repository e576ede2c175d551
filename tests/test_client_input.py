"""Nothing a client can send is a server error, and answers keep to their schema: NUL bytes,
deep JSON, paging, sorting and filter arguments of every list (generated from the registered
views and the URL map), FAB routes the product switches off, and the fixed answer shapes."""

import re
from datetime import datetime

import pytest
from flask_appbuilder.api import ModelRestApi
from flask_appbuilder.baseviews import BaseCRUDView

from app.extensions import db
from tests.test_api_flows import BJORN, Api

NUL = "a\x00b"


@pytest.fixture
def api(client, api_headers):
    return Api(client, api_headers)


def crud_views(app):
    """Every model screen (FAB ModelView) registered in the app."""
    return [v for v in app.appbuilder.baseviews if isinstance(v, BaseCRUDView)]


def model_apis(app):
    return [v for v in app.appbuilder.baseviews if isinstance(v, ModelRestApi)]


def list_url(view):
    return f"{view.route_base}/list/"


def columns_of(view, test):
    search = view._filters.get_search_filters()
    return [col for col in search if not view.datamodel.is_relation(col)
            and test(view.datamodel, col)]


def is_text(datamodel, col):
    return datamodel.is_string(col) or datamodel.is_text(col)


def is_bool(datamodel, col):
    return datamodel.is_boolean(col)


def assert_names(response, field):
    """A 400 that names the field: JSON `errors` for the API, the message for a screen."""
    assert response.status_code == 400, (response.status_code, response.get_data(as_text=True))
    if response.is_json:
        body = response.get_json()
        assert isinstance(body["message"], str)
        assert field in body["errors"], body
    else:
        assert field in response.get_data(as_text=True)


def url_rules(app, prefix, methods):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(prefix) and rule.methods & methods:
            url = re.sub(r"<(?:int:)?pk>|<int:\w+>", "1", rule.rule)
            if "<" not in url:
                yield url, sorted(rule.methods & methods)[0]


# ---- 1. server errors for client input --------------------------------------------------------

def test_receipt_pdf_of_a_registered_mail_issuance_is_not_found(api):
    serial = api.free_card()
    prepared = api.ok(api.post("Korthandläggare", "/mail-issuances/", {
        "card_serial": serial, "recipient_hsa_id": BJORN, "reason": "awaiting_new_card",
        "address": "Storgatan 1, 432 44 Varberg", "justification": "Arbetar på distans"}), 201)
    response = api.get("Servicecenter", f"/issuances/{prepared['id']}/receipt.pdf")
    assert response.status_code == 404
    assert "rekommenderad post" in response.get_json()["message"]


@pytest.mark.both_databases
def test_nul_in_json_bodies_is_refused_naming_the_field(api, dialect):
    for path, body, field in (
        ("/people/", {"hsa_id": "SE2321000131-E000000009999", "name": NUL}, "name"),
        ("/units/", {"name": NUL, "org_type_code": "vardcentral"}, "name"),
        ("/pickup-points/", {"name": "Entré", "address": NUL}, "address"),
        ("/issuances/", {"card_serial": "1234567", "second_attester": {"username": NUL}},
         "second_attester.username"),
        ("/people/", {NUL: 1}, NUL),
    ):
        response = api.post("Admin", path, body)
        assert_names(response, field)
    response = api.put("Servicecenter", "/people/1", {"email": NUL})
    assert_names(response, "email")


@pytest.mark.both_databases
def test_nul_in_text_bodies_form_posts_and_path_is_refused(api, login, dialect):
    csv = "hsa_id,ordinary_card,reserve_card_order\nSE2321000131-E000000000001,active,\x00\n"
    assert_names(api.put("Servicecenter", "/kobe/register", data=csv,
                         content_type="text/csv"), "_body")
    web = login("Admin")
    response = web.post("/registers/people/add", data={
        "name": NUL, "hsa_id": "SE2321000131-E000000009999"})
    assert_names(response, "name")
    assert_names(web.get("/registers/people/show/%00"), "pk")
    assert_names(web.get("/registers/people/list/?x%00y=1"), "x\x00y")


@pytest.mark.both_databases
def test_nul_in_every_api_filter_is_refused(app, api, dialect):
    tried = 0
    for view in model_apis(app):
        for col in view.search_columns or ():
            if view.datamodel.is_relation(col) or not is_text(view.datamodel, col):
                continue
            q = f"(filters:!((col:{col},opr:eq,value:'a%00b')))"
            response = api.get("Admin", f"{view.route_base[len('/api/v1'):]}/?q={q}")
            assert_names(response, "q")
            db.session.rollback()
            tried += 1
    assert tried >= 5


@pytest.mark.both_databases
def test_nul_in_every_screen_filter_and_query_arg_is_refused(app, login, dialect):
    web = login("Admin")
    tried = 0
    for view in crud_views(app):
        for col in columns_of(view, is_text):
            response = web.get(f"{list_url(view)}?_flt_0_{col}=a%00b")
            assert_names(response, f"_flt_0_{col}")
            db.session.rollback()
            tried += 1
    assert tried >= 8
    assert_names(web.get("/deviations/report/export?from=2026-01-01%00"), "from")


def test_a_kobe_csv_that_is_not_csv_is_a_400(api, login):
    broken = "hsa_id,ordinary_card,reserve_card_order\nSE2321000131-E000000000001,\"act\rive,ja\n"
    for body in (broken, "è\x05¡PpÞüú\r¦\x0f#ÐB\xf1\x82\x97\xa6N"):
        response = api.put("Servicecenter", "/kobe/register", data=body.encode("utf-8"),
                           content_type="text/csv")
        assert response.status_code == 400, response.get_data(as_text=True)
        assert response.get_json()["errors"]
    from app.validation import FieldError
    from app.workflow import kobe

    with pytest.raises(FieldError):
        kobe.parse_csv(b"hsa_id,ordinary_card,reserve_card_order\n\xff\xfe\n")


def test_deep_json_is_a_400_on_every_json_endpoint(app, api):
    deep = "[" * 5000 + "]" * 5000
    tried = 0
    for url, method in url_rules(app, "/api/v1/", {"POST", "PUT"}):
        response = api.client.open(url, method=method, data=deep,
                                   content_type="application/json",
                                   headers=api.headers("Admin"))
        assert_names(response, "_body")
        tried += 1
    assert tried >= 15
    # Nesting within the limit is an ordinary answer (here: 400 for the wrong field only).
    nested = {"rows": [{"hsa_id": [[[["x"]]]]}]}
    response = api.put("Servicecenter", "/kobe/register", nested)
    assert response.status_code == 400 and "_body" not in response.get_json()["errors"]


@pytest.mark.both_databases
def test_negative_and_huge_pages_of_every_model_screen(app, login, dialect):
    web = login("Admin")
    for view in crud_views(app):
        name = type(view).__name__
        for args, field in (
            (f"page_{name}=-5", f"page_{name}"),
            (f"page_{name}=99999999999999999999", f"page_{name}"),
            (f"page_{name}=x", f"page_{name}"),
            (f"psize_{name}=-1", f"psize_{name}"),
            (f"psize_{name}=0", f"psize_{name}"),
            (f"psize_{name}=100000000", f"psize_{name}"),
            (f"_oc_{name}=x&_od_{name}=asc", f"_oc_{name}"),
            (f"_oc_{name}=x", f"_oc_{name}"),
        ):
            assert_names(web.get(f"{list_url(view)}?{args}"), field)
        # the same arguments with a valid value are an ordinary page (or not permitted)
        order = next(iter(view.order_columns), None)
        sort = f"&_oc_{name}={order}&_od_{name}=desc" if order else ""
        response = web.get(f"{list_url(view)}?page_{name}=0&psize_{name}=25{sort}")
        assert response.status_code in (200, 302, 403), (name, response.status_code)


@pytest.mark.both_databases
def test_negative_and_huge_pages_of_every_model_api(app, api, dialect):
    for view in model_apis(app):
        base = view.route_base[len("/api/v1"):]
        for q in ("(page:-1)", "(page:99999999999999999999,page_size:10)",
                  "(page:-1,page_size:-5)"):
            assert_names(api.get("Admin", f"{base}/?q={q}"), "q.page")
        for role in ("Admin", "Servicecenter", "Chef"):
            response = api.get(role, f"{base}/?q=(page:0,page_size:100000000)")
            assert response.status_code in (200, 403), (base, response.status_code)
            if response.status_code == 200:
                assert len(response.get_json()["result"]) <= app.config["FAB_API_MAX_PAGE_SIZE"]


def test_non_boolean_values_in_boolean_filters(app, api, login):
    web = login("Admin")
    screens = apis = 0
    for view in crud_views(app):
        for col in columns_of(view, is_bool):
            for value in ("x", "", "true"):
                assert_names(web.get(f"{list_url(view)}?_flt_0_{col}={value}"), f"_flt_0_{col}")
            assert web.get(f"{list_url(view)}?_flt_0_{col}=y").status_code in (200, 403)
            assert_names(web.get(f"{list_url(view)}?_flt_9_{col}=y"), f"_flt_9_{col}")
            screens += 1
    for view in model_apis(app):
        base = view.route_base[len("/api/v1"):]
        for col in view.search_columns or ():
            if not view.datamodel.is_boolean(col):
                continue
            for value in ("'x'", "0", "'true'", "!(!t)"):
                q = f"(filters:!((col:{col},opr:eq,value:{value})))"
                assert_names(api.get("Admin", f"{base}/?q={q}"), "q.filters[0].value")
            q = f"(filters:!((col:{col},opr:eq,value:!t)))"
            assert api.get("Admin", f"{base}/?q={q}").status_code in (200, 403)
            apis += 1
    assert screens >= 2 and apis >= 2


def test_filter_values_of_the_wrong_type_in_the_api(api):
    for q in ("(filters:!((col:name,opr:sw,value:5)))",
              "(filters:!((col:name,opr:eq,value:!(a,b))))",
              "(filters:!((col:hsa_id,opr:ct,value:(a:b))))"):
        assert_names(api.get("Servicecenter", f"/people/?q={q}"), "q.filters[0].value")


def test_fab_routes_the_product_does_not_need_are_switched_off(app, api, login):
    web = login("Admin")
    assert web.get("/users/download/x.csv").status_code == 404
    for view in crud_views(app):
        assert web.get(f"{view.route_base}/download/x.csv").status_code == 404, view
    assert web.get("/userstatschartview/chart/username").status_code == 404
    assert web.get("/userstatschartview/chart/").status_code == 404
    assert api.put("Admin", "/security/users/0", {}).status_code == 404
    assert api.post("Admin", "/security/permissions-resources/", {}).status_code == 404
    assert api.get("Admin", "/security/roles/").status_code == 404
    # ... while the login and the refresh of the API stay
    assert app.url_map.bind("").match("/api/v1/security/login", method="POST")
    assert app.url_map.bind("").match("/api/v1/security/refresh", method="POST")


# ---- 2. answers on their schema ------------------------------------------------------------

def test_deviation_times_carry_their_offset(api, as_user):
    from app.workflow import deviations

    with as_user("Servicecenter"):
        created = deviations.create("manual", "Kortet hittades i en jacka",
                                    person_hsa_id=BJORN)
    db.session.commit()
    listed = api.ok(api.get("Servicecenter", "/deviations/"))
    shown = api.ok(api.get("Servicecenter", f"/deviations/{created.id}"))
    for value in (listed["result"][0]["created_at"], shown["result"]["created_at"]):
        assert datetime.fromisoformat(value).utcoffset() is not None, value


def test_a_person_without_unit_matches_the_document(api):
    added = api.ok(api.post("Servicecenter", "/people/", {
        "hsa_id": "SE2321000131-E000000009998", "name": "Utan Enhet"}), 201)
    shown = api.ok(api.get("Servicecenter", f"/people/{added['id']}"))
    assert shown["result"]["unit"] is None
    spec = api.ok(api.get("Admin", "/_openapi"))
    for name in ("PersonApi.get", "PersonApi.get_list"):
        unit = spec["components"]["schemas"][name]["properties"]["unit"]
        nullable = unit.get("nullable") or any(
            branch.get("nullable") for branch in unit.get("anyOf", ()))
        assert nullable is True, (name, unit)


def test_a_malformed_login_is_a_400_with_a_readable_message_and_the_fields(client):
    for body in ({"username": 1}, {"username": "admin"}, {"password": "x", "provider": "db"}):
        response = client.post("/api/v1/security/login", json=body)
        assert response.status_code == 400
        answer = response.get_json()
        assert isinstance(answer["message"], str)
        assert answer["errors"], answer
    answer = client.post("/api/v1/security/login", json={"username": 1}).get_json()
    assert "username" in answer["errors"]


def test_booleans_are_json_booleans(api):
    for path, body, field in (
        ("/pickup-points/", {"name": "Entré", "active": 0}, "active"),
        ("/pickup-points/", {"name": "Entré", "active": "true"}, "active"),
        ("/people/", {"hsa_id": "SE2321000131-E000000009997", "name": "Noll",
                      "protected_identity": 0}, "protected_identity"),
        ("/people/", {"hsa_id": "SE2321000131-E000000009997", "name": "Ett",
                      "protected_identity": 1}, "protected_identity"),
    ):
        assert_names(api.post("Servicecenter", path, body), field)
    assert_names(api.put("Servicecenter", "/pickup-points/1", {"active": 1}), "active")
    added = api.ok(api.post("Servicecenter", "/pickup-points/", {"name": "Entré",
                                                                 "active": False}), 201)
    assert added["result"]["active"] is False


def test_put_bodies_are_documented_as_partial(app, api):
    spec = api.ok(api.get("Admin", "/_openapi"))
    schemas = spec["components"]["schemas"]
    for path, item in spec["paths"].items():
        put = item.get("put")
        if not put or not path.startswith(("/api/v1/people", "/api/v1/units",
                                           "/api/v1/pickup-points")):
            continue
        ref = put["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        schema = schemas[ref.rsplit("/", 1)[1]]
        assert not schema.get("required"), (path, schema)
        post_ref = spec["paths"][path.rsplit("/", 1)[0] + "/"]["post"]["requestBody"][
            "content"]["application/json"]["schema"]["$ref"]
        assert schemas[post_ref.rsplit("/", 1)[1]].get("required")
        assert set(schema["properties"]) == set(schemas[post_ref.rsplit("/", 1)[1]]["properties"])
