"""Deviations through the API: a manager sees only their own units (another unit's deviation is
404), notes, and the report streamed as CSV and XLSX with the same rows."""

import csv
import io

import pytest
from openpyxl import load_workbook

from app.demo import hsa
from tests.test_api_flows import Api

OWN = hsa("E000000000001")  # Anna, in the unit the demo manager (chef) manages
OTHER = hsa("E000000000003")  # Cecilia, another unit


@pytest.fixture
def api(client, api_headers):
    return Api(client, api_headers)


@pytest.fixture
def two_deviations(as_user):
    from app.workflow import deviations

    with as_user("Servicecenter"):
        own = deviations.create("manual", "Kortet ej återlämnat i tid", person_hsa_id=OWN)
        other = deviations.create("card_lost", "Kortet förlorat", person_hsa_id=OTHER)
        return own.id, other.id


def test_manager_sees_only_own_units(api, two_deviations):
    own, other = two_deviations
    mine = api.ok(api.get("Chef", "/deviations/"))
    assert [row["id"] for row in mine["result"]] == [own]
    assert api.get("Chef", f"/deviations/{other}").status_code == 404
    assert api.ok(api.get("Chef", f"/deviations/{own}"))["result"]["person"]["hsa_id"] == OWN
    everything = api.ok(api.get("Servicecenter", "/deviations/"))
    assert {row["id"] for row in everything["result"]} == {own, other}


def test_notes_only_on_visible_deviations(api, two_deviations, session):
    from models import Deviation

    own, other = two_deviations
    noted = api.ok(api.post("Chef", f"/deviations/{own}/notes",
                            {"text": "Pratat med medarbetaren"}), 201)
    assert noted == {"id": own, "notes": 1}
    refused = api.post("Chef", f"/deviations/{other}/notes", {"text": "x"})
    assert refused.status_code == 403
    assert refused.get_json()["rule"] == "outside_managed_units"
    assert "enhet" in refused.get_json()["message"]
    assert api.post("Chef", "/deviations/999999/notes", {"text": "x"}).status_code == 404
    assert api.post("Chef", f"/deviations/{own}/notes", {"text": ""}).status_code == 400
    session.expire_all()
    assert [n.text for n in session.get(Deviation, own).notes] == ["Pratat med medarbetaren"]


def test_csv_report_is_a_streamed_download_of_own_rows(api, two_deviations, set_now):
    set_now("2026-11-29T08:00:00")
    own, other = two_deviations
    response = api.get("Chef", "/reports/deviations", query_string={"format": "csv"})
    assert response.status_code == 200
    assert response.is_streamed
    assert response.mimetype == "text/csv"
    assert 'filename="avvikelser-2026-11-29.csv"' in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff")),
                               delimiter=";"))
    assert [int(row["id"]) for row in rows] == [own]
    assert rows[0]["hsa_id"] == OWN
    everything = api.get("Servicecenter", "/reports/deviations")
    assert len(list(csv.DictReader(io.StringIO(everything.get_data(as_text=True)),
                                   delimiter=";"))) == 2


def test_xlsx_report_opens_with_the_same_rows(api, two_deviations):
    own, other = two_deviations
    response = api.get("Servicecenter", "/reports/deviations",
                       query_string={"format": "xlsx", "type": "card_lost"})
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].endswith('.xlsx"')
    sheet = load_workbook(io.BytesIO(response.data), read_only=True).active
    values = list(sheet.iter_rows(values_only=True))
    header, body = values[0], values[1:]
    assert [dict(zip(header, row, strict=True))["id"] for row in body] == [other]


def test_report_filters_are_checked(api):
    for query in ({"format": "pdf"}, {"from": "2026-02-30"}, {"unit_id": "x"},
                  {"type": "nonsense"}):
        response = api.get("Chef", "/reports/deviations", query_string=query)
        assert response.status_code == 400, query
        assert response.get_json()["errors"]
