"""The registered-mail flow through the screens, as a card handler (Korthandläggare)."""

import re

from sqlalchemy import select

from app.extensions import db
from models import Issuance

ADDRESS = "Anna Åkesson\nStorgatan 1\n302 45 Halmstad"
JUSTIFICATION = "På distans i Kiruna, ingen behörig administratör på plats"


def _prepare_form(serial, recipient, **overrides):
    form = {"card_serial": serial, "recipient_hsa_id": recipient.hsa_id, "reason": "forgotten",
            "address": ADDRESS, "justification": JUSTIFICATION}
    form.update(overrides)
    return form


def _mail_issuances():
    return db.session.execute(
        select(Issuance).where(Issuance.channel == "registered_mail")
    ).unique().scalars().all()


def _status(issuance_id) -> str:
    db.session.expire_all()
    return db.session.get(Issuance, issuance_id).status


def test_the_start_page_of_the_flow_is_swedish_with_a_reader_field(login):
    page = login("Korthandläggare").get("/mail-flow/").get_data(as_text=True)
    assert "Förbered ett reservkort för rekommenderad post" in page
    assert re.search(r'<input[^>]*name="card_serial"[^>]*data-card-serial', page)
    assert "Motivering: varför rekommenderad post" in page


def test_the_whole_flow_through_the_screens(login, in_stock_card, demo_person):
    client = login("Korthandläggare")
    serial = in_stock_card("LOA2").serial
    answer = client.post("/mail-flow/prepare", data=_prepare_form(serial, demo_person("Anna")))
    assert answer.status_code == 302
    (issuance,) = _mail_issuances()
    assert issuance.status == "prepared" and issuance.justification == JUSTIFICATION
    url = f"/mail-flow/issuance/{issuance.id}"
    assert answer.headers["Location"].endswith(url)

    page = client.get(url).get_data(as_text=True)
    assert "Förberedd" in page and serial in page and "Anna Åkesson" in page

    letter = client.get(f"{url}/letter.pdf")
    assert letter.status_code == 200 and letter.mimetype == "application/pdf"
    assert letter.get_data().startswith(b"%PDF")

    answer = client.post(f"{url}/dispatched", data={"registered_mail_number": "RR123456789SE"},
                         follow_redirects=True)
    assert "Registrerat som skickat med rekommenderad post." in answer.get_data(as_text=True)
    assert _status(issuance.id) == "sent"
    assert db.session.get(Issuance, issuance.id).registered_mail_number == "RR123456789SE"

    client.post(f"{url}/receipt-returned")
    assert _status(issuance.id) == "receipt_received"

    unconfirmed = client.post(f"{url}/certificate-issued", data={}, follow_redirects=True)
    assert "Kryssa i rutan ”Jag har skapat certifikatet ...”" in unconfirmed.get_data(as_text=True)
    assert _status(issuance.id) == "receipt_received"

    answer = client.post(f"{url}/certificate-issued", data={"confirm": "yes"},
                         follow_redirects=True)
    page = answer.get_data(as_text=True)
    assert "Certifikatet är registrerat som utfärdat; kortet är aktivt." in page
    assert _status(issuance.id) == "active"
    active = db.session.get(Issuance, issuance.id)
    assert active.id_method == "Identifierad med rekommenderad post"
    assert active.certificate_issued_by_user_id is not None
    assert 'data-status="active">Aktiv<' in page


def test_an_loa3_card_is_refused_with_the_rule_message(login, in_stock_card, demo_person):
    serial = in_stock_card("LOA3").serial
    answer = login("Korthandläggare").post(
        "/mail-flow/prepare", data=_prepare_form(serial, demo_person("Anna")))
    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    assert f"Kortet {serial} är inte ett LOA2-kort" in page
    assert _mail_issuances() == []
    assert f'value="{serial}"' in page  # the form keeps what was typed


def test_missing_justification_is_refused_naming_the_field(login, in_stock_card, demo_person):
    serial = in_stock_card("LOA2").serial
    answer = login("Korthandläggare").post(
        "/mail-flow/prepare",
        data=_prepare_form(serial, demo_person("Anna"), justification="  "))
    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    assert "Ange varför kortet måste skickas med rekommenderad post." in page
    assert "Varför rekommenderad post: Ange varför" in page
    assert _mail_issuances() == []


def test_a_step_out_of_order_is_a_message(login, in_stock_card, demo_person):
    client = login("Korthandläggare")
    client.post("/mail-flow/prepare",
                data=_prepare_form(in_stock_card("LOA2").serial, demo_person("Anna")))
    (issuance,) = _mail_issuances()
    answer = client.post(f"/mail-flow/issuance/{issuance.id}/certificate-issued",
                         data={"confirm": "yes"}, follow_redirects=True)
    assert answer.status_code == 200
    assert "är inte möjligt när utgivningen har status" in answer.get_data(as_text=True)
    assert _status(issuance.id) == "prepared"


def test_blocking_a_mail_issuance(login, in_stock_card, demo_person):
    client = login("Korthandläggare")
    client.post("/mail-flow/prepare",
                data=_prepare_form(in_stock_card("LOA2").serial, demo_person("Anna")))
    (issuance,) = _mail_issuances()
    url = f"/mail-flow/issuance/{issuance.id}"
    client.post(f"{url}/dispatched", data={"registered_mail_number": "RR1SE"})
    answer = client.post(f"{url}/block", data={"reason": "Brevet kom bort hos PostNord"},
                         follow_redirects=True)
    assert "Kortet är spärrat." in answer.get_data(as_text=True)
    assert _status(issuance.id) == "blocked"
    assert db.session.get(Issuance, issuance.id).block_reason == "Brevet kom bort hos PostNord"
    page = client.get("/mail-flow/").get_data(as_text=True)
    assert "Nyligen avslutade" in page and "Spärrad" in page


def test_other_roles_cannot_reach_the_mail_flow(login):
    for role in ("Chef", "Televäxeln", "Intygsgivare", "Servicecenter"):
        client = login(role)
        assert client.get("/mail-flow/").status_code == 403, role
        assert client.post("/mail-flow/prepare", data={}).status_code == 403, role


def test_unknown_issuance_is_not_found(login):
    assert login("Korthandläggare").get("/mail-flow/issuance/999999").status_code == 404


def test_a_name_typed_for_the_recipients_hsa_id_is_found_to_be_checked(login, in_stock_card,
                                                                      demo_person):
    """One person with that name: their HSA-id is put in the field, to be checked and sent
    again (nothing is prepared on a name); a protected person is not found by name."""
    client = login("Korthandläggare")
    serial = in_stock_card().serial
    anna = demo_person("Anna")
    answer = client.post("/mail-flow/prepare", data=_prepare_form(
        serial, anna, recipient_hsa_id="Anna Åkesson"))
    page = answer.get_data(as_text=True)
    assert "Hittade på namnet ”Anna Åkesson”: Anna Åkesson (SE2321000131-E000000000001)" in page
    assert f'value="{anna.hsa_id}"' in page and _mail_issuances() == []
    protected = client.post("/mail-flow/prepare", data=_prepare_form(
        serial, anna, recipient_hsa_id="Eva Ek")).get_data(as_text=True)
    assert ("Mottagarens HSA-id: Ange HSA-id, t.ex. SE2321000131-B123; ingen person med "
            "namnet ”Eva Ek” hittades.") in protected
    assert "E000000000005" not in protected and _mail_issuances() == []
