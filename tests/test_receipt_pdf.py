"""The receipt (kvittens) PDF and the registered-mail letter: content, Swedish text, A4, barcode."""

import io
from datetime import timedelta

import pytest
from pypdf import PdfReader
from reportlab.graphics.barcode.code128 import _patterns

from app import clock, pdf
from app.extensions import db
from models import Issuance

PASSWORD = "Reservkort-demo-2026"
ANNA = "SE2321000131-E000000000001"
BJORN = "SE2321000131-E000000000002"  # Björn Östlund: a new ordinary card ordered in Kobe
ADDRESS = "Servicecenter Hälsoval, Box 1, 301 80 Halmstad"
A4 = (595.28, 841.89)
LATE_RULE = ("Om inte kvittensen inkommer till Servicecenter inom 7 dagar från aktivering, "
             "kommer reservkortet att spärras.")
CODE128_BY_PATTERN = {pattern: value for value, pattern in _patterns.items()}


@pytest.fixture
def app_config():
    return {"SERVICECENTER_ADDRESS": ADDRESS}


@pytest.fixture
def issuance(as_user, in_stock_card):
    """Anna Åkesson's card, attested by Gustav Gran (logged in) and Helena Håkansson."""
    from app.workflow import application

    serial = in_stock_card().serial
    with as_user("intygsgivare1"):
        attesters = [application.attest_caller(PASSWORD),
                     application.attest("intygsgivare2", PASSWORD)]
        issuance_id = application.apply_in_person(
            serial, ANNA, "lost_stolen_damaged", attesters, recipient_present=True,
            envelope_unopened=True).id
    return db.session.get(Issuance, issuance_id)


def words(page) -> str:
    return " ".join(page.extract_text().split())


def decode_code128(image) -> str:
    """Read the bars along the middle row of a Code128 image (code set C, digits)."""
    gray = image.convert("L")
    width, height = gray.size
    row = [gray.getpixel((x, height // 2)) < 128 for x in range(width)]
    runs = []
    for is_bar in row:
        if runs and runs[-1][0] == is_bar:
            runs[-1][1] += 1
        else:
            runs.append([is_bar, 1])
    while runs and not runs[0][0]:
        runs.pop(0)
    while runs and not runs[-1][0]:
        runs.pop()
    module = sum(n for _bar, n in runs[:6]) / 11  # every symbol is 11 modules wide
    letters = "".join(
        (chr(ord("A") + round(n / module) - 1) if is_bar
         else chr(ord("a") + round(n / module) - 1)) for is_bar, n in runs)
    symbols = [letters[i:i + 6] for i in range(0, len(letters) - 7, 6)]
    values = [CODE128_BY_PATTERN[symbol] for symbol in symbols]
    assert CODE128_BY_PATTERN[letters[-7:]] == 106, "stop pattern"
    start, *data, check = values
    assert start == 105, "start code C"
    assert (start + sum(i * v for i, v in enumerate(data, start=1))) % 103 == check
    return "".join(f"{value:02d}" for value in data)


def assert_a4(page):
    box = page.mediabox
    assert float(box.width) == pytest.approx(A4[0], abs=1)
    assert float(box.height) == pytest.approx(A4[1], abs=1)


def test_receipt_is_one_a4_page_with_every_field(issuance):
    reader = PdfReader(io.BytesIO(pdf.render_receipt(issuance)))
    assert len(reader.pages) == 1
    page = reader.pages[0]
    assert_a4(page)
    text = words(page)
    today = clock.today()
    expected = [
        "Reservkortskvittens",
        issuance.card.serial,
        "Anna Åkesson", ANNA,
        "Gustav Gran", "Helena Håkansson",
        "Stulet, förlorat, sönder, skadat",
        today.isoformat(),
        (today + timedelta(days=30)).isoformat(),
        (today + timedelta(days=7)).isoformat(),
        ADDRESS,
        "Reservkortsmottagarens underskrift", "Namnförtydligande",
        LATE_RULE,
    ]
    missing = [item for item in expected if item not in text]
    assert not missing, text


def test_receipt_embeds_a_font_with_swedish_letters(issuance):
    reader = PdfReader(io.BytesIO(pdf.render_receipt(issuance)))
    fonts = reader.pages[0]["/Resources"]["/Font"]
    names = {str(font.get_object()["/BaseFont"]) for font in fonts.values()}
    assert any("BitstreamVeraSans" in name for name in names), names
    text = words(reader.pages[0])
    assert "å" in text and "ä" in text and "ö" in text and "Å" in text


def test_receipt_barcode_scans_as_the_card_serial(issuance):
    reader = PdfReader(io.BytesIO(pdf.render_receipt(issuance)))
    images = reader.pages[0].images
    assert len(images) == 1
    assert decode_code128(images[0].image) == issuance.card.serial


def test_receipt_route_serves_it_inline_to_the_attesters_only(issuance, login):
    url = f"/ansokan/{issuance.id}/kvittens.pdf"
    for attester in ("Intygsgivare", "intygsgivare2"):
        response = login(attester).get(url)
        assert response.status_code == 200
        assert response.mimetype == "application/pdf"
        disposition = response.headers["Content-Disposition"]
        assert disposition == f'inline; filename="kvittens-{issuance.card.serial}.pdf"'
        assert len(PdfReader(io.BytesIO(response.data)).pages) == 1
    assert login("Admin").get(url).status_code == 403  # not an attester of it
    assert login("Servicecenter").get(url).status_code == 403
    assert login("Intygsgivare").get("/ansokan/999999/kvittens.pdf").status_code == 404


def test_mail_letter_has_receipt_and_information(as_user, in_stock_card):
    from app.workflow import mail_flow

    serial = in_stock_card().serial
    with as_user("korthandlaggare"):
        issuance_id = mail_flow.prepare(
            serial, BJORN, "awaiting_new_card", address="Östra vägen 3, 432 37 Varberg",
            justification="Distansarbete, ingen behörig administratör på plats").id
    issuance = db.session.get(Issuance, issuance_id)
    reader = PdfReader(io.BytesIO(pdf.render_mail_letter(issuance)))
    assert len(reader.pages) == 2
    for page in reader.pages:
        assert_a4(page)
    receipt, letter = words(reader.pages[0]), words(reader.pages[1])
    for item in (serial, "Björn Östlund", BJORN, "Väntar på nytt SITHS-kort",
                 "Östra vägen 3, 432 37 Varberg",
                 f"{issuance.original_days} dagar från att certifikatet utfärdats", ADDRESS,
                 "Reservkortsmottagarens underskrift", "Namnförtydligande"):
        assert item in receipt, item
    assert "https://minasidor.siths.se" in letter and "SITHS eID-appen" in letter
    assert "Björn Östlund" in letter
    assert decode_code128(reader.pages[0].images[0].image) == serial
