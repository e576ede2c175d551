"""The registers through the screens: people (validated, protected identity masked), and the
Kobe import with its preview."""

import io

from flask import g
from sqlalchemy import select

from app.extensions import db
from models import AuditEvent, KobeRecord, Person
from tests.workflow_support import count, person

GOOD = ("hsa_id;ordinary_card;reserve_card_order\n"
        "SE2321000131-E000000000004;ordered;nej\n"
        "SE2321000131-E000000000010;active;ja\n")
BAD = ("hsa_id;ordinary_card;reserve_card_order\n"
       "SE2321000131-E000000000004;ordered;nej\n"
       "SE2321000131-E000000000099;sometimes;ja\n")


def _kobe(hsa_suffix):
    db.session.expire_all()
    return db.session.execute(
        select(KobeRecord).join(Person).where(Person.hsa_id == f"SE2321000131-{hsa_suffix}")
    ).scalar_one()


def test_kobe_preview_shows_row_errors_and_saves_nothing(login):
    client = login("Servicecenter")
    assert client.get("/registers/kobe-import/").status_code == 200
    page = client.post("/registers/kobe-import/preview", data={"text": BAD}).text
    assert "row-error" in page and "E000000000099" in page
    assert "Ordinarie SITHS-kort:" in page  # the error names the field
    assert "/registers/kobe-import/confirm" not in page  # no way to save a bad import
    response = client.post("/registers/kobe-import/confirm", data={"text": BAD})
    assert response.status_code == 200 and "alert-danger" in response.text
    assert _kobe("E000000000004").ordinary_card == "none"


def test_kobe_import_from_a_file_saves_after_preview(login):
    client = login("Servicecenter")
    page = client.post("/registers/kobe-import/preview",
                       data={"file": (io.BytesIO(GOOD.encode()), "kobe.csv")},
                       content_type="multipart/form-data").text
    assert "row-error" not in page and "/registers/kobe-import/confirm" in page
    assert _kobe("E000000000004").ordinary_card == "none"  # the preview saved nothing
    response = client.post("/registers/kobe-import/confirm", data={"text": GOOD},
                           follow_redirects=True)
    assert "alert-success" in response.text
    assert _kobe("E000000000004").ordinary_card == "ordered"
    assert _kobe("E000000000010").reserve_card_order is True
    assert "Kobe" in client.get("/registers/kobe/list/").text


def test_person_with_a_malformed_personal_number_is_refused_naming_the_field(login):
    client = login("Servicecenter")
    before = count(Person)
    response = client.post("/registers/people/add", data={
        "hsa_id": "SE2321000131-E000000000077", "personal_number": "19850101-1230",
        "name": "Olle Ohlsson"})
    assert response.status_code == 200
    assert "Personnummer: Inte ett giltigt svenskt personnummer" in response.text
    assert count(Person) == before
    client.post("/registers/people/add", data={
        "hsa_id": "se2321000131-e000000000077", "personal_number": "19850505-1238",
        "name": "Olle Ohlsson"})
    olle = db.session.execute(select(Person).where(Person.name == "Olle Ohlsson")).scalar_one()
    assert olle.hsa_id == "SE2321000131-E000000000077"
    assert olle.personal_number == "198505051238"
    assert count(AuditEvent, AuditEvent.entity == "person", AuditEvent.entity_id == olle.id)


def test_protected_identity_is_masked_for_users_not_cleared(login, app):
    from models import AccountLink

    eva = person("Eva")
    client = login("Servicecenter")
    listing = client.get("/registers/people/list/?_flt_0_hsa_id=" + eva.hsa_id).text
    assert eva.hsa_id in listing and "Eva Ek" not in listing and eva.personal_number not in listing
    assert "Eva Ek" not in client.get(f"/registers/people/show/{eva.id}").text
    assert client.get(f"/registers/people/edit/{eva.id}").status_code == 302
    link = db.session.execute(select(AccountLink).where(
        AccountLink.person_id == person("Lars").id)).scalar_one()  # Servicecenter's login
    link.protected_identity_clearance = True
    db.session.commit()
    g.pop("protected_identity_clearance", None)  # per request in the app; tests share one g
    assert "Eva Ek" in login("Servicecenter").get(f"/registers/people/show/{eva.id}").text
