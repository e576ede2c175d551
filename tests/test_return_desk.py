"""The return desk's scan mode: Servicecenter puts returned cards in the reader (or types their
serials) one after another; each card is returned at once by the workflow, restocked or
destroyed as chosen once for the batch. A bad serial gets its own Swedish reason and the batch
goes on."""

import html
import re
from datetime import timedelta

import pytest
from sqlalchemy import update

from app import clock
from app.errors import RuleViolation
from app.extensions import db
from app.validation import FieldError
from app.workflow import lifecycle
from models import Issuance, ReserveCard
from tests.workflow_support import apply, audit_actions

UNKNOWN = "1234567890"


def _text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def _results(page) -> list[tuple[str, str]]:
    """(serial, result) of each row of the batch, latest first."""
    table = page[page.index("rk-scan-results"):page.index("</table>", page.index(
        "rk-scan-results"))]
    rows = re.findall(r'<td data-label="Kortnummer">([^<]*)</td>\s*<td data-label="Resultat">'
                      r"(.*?)</td>", table, re.S)
    return [(serial, re.sub(r"<[^>]+>", "", result).strip()) for serial, result in rows]


def _card(serial) -> ReserveCard:
    db.session.expire_all()
    return db.session.query(ReserveCard).filter_by(serial=serial).one()


@pytest.fixture
def two_out(as_user):
    """Two cards out, with Anna and with Björn."""
    return [apply(as_user), apply(as_user, recipient="Björn", reason="awaiting_new_card")]


def _start(client, then):
    return client.post("/returns/scan/start", data={"then": then}, follow_redirects=True)


def _scan(client, serial):
    return client.post("/returns/scan/", data={"serial": serial}, follow_redirects=True)


def test_the_returns_page_leads_to_the_scan_mode(login):
    page = login("Servicecenter").get("/returns/").text
    assert 'href="/returns/scan/"' in page
    assert "Skanningsläge: återlämna många kort i följd" in page


def test_a_batch_is_started_by_choosing_restock_or_destroy_none_preselected(login):
    client = login("Servicecenter")
    page = _text(client.get("/returns/scan/"))
    assert page.count('name="then"') == 2 and "checked" not in page
    assert 'data-card-serial' not in page  # no scanning before the choice
    page = _text(client.post("/returns/scan/start", data={}, follow_redirects=True))
    assert "Välj om korten i den här omgången ska läggas tillbaka i lager eller destrueras." \
        in page
    assert "data-card-serial" not in page
    page = _text(_start(client, "restock"))
    assert "Korten läggs tillbaka i lager" in page
    assert 'data-card-serial' in page and "autofocus" in page and "data-autosubmit-card" in page


def test_each_scanned_card_is_returned_and_restocked_and_bad_serials_are_named(login, two_out):
    anna, bjorn = (issuance.card.serial for issuance in two_out)
    client = login("Servicecenter")
    _start(client, "restock")
    _scan(client, anna)
    _scan(client, UNKNOWN)
    _scan(client, anna)  # twice: it is back already
    _scan(client, "12ab")
    page = _text(_scan(client, f" {bjorn} "))
    assert _results(page) == [
        (bjorn, "Kortet återlämnat: Återlämnat och tillbaka i lager."),
        ("12ab", "Inte återlämnat: Ett kortnummer består av 6 till 20 siffror."),
        (anna, f"Inte återlämnat: Kortet {anna} är inte utlämnat till någon (status: I lager) "
               "och kan därför inte återlämnas."),
        (UNKNOWN, f"Inte återlämnat: Kortet {UNKNOWN} finns inte i lagret."),
        (anna, "Kortet återlämnat: Återlämnat och tillbaka i lager."),
    ]
    assert "2 kort återlämnade, 3 kortnummer avvisade" in page
    for issuance in two_out:
        assert db.session.get(Issuance, issuance.id).status == "returned"
        assert _card(issuance.card.serial).status == "in_stock"
        assert audit_actions(issuance.id)[-1] == "issuance.return"
        assert audit_actions(issuance.card_id, "card")[-2:] == ["card.return", "card.restock"]


def test_a_destroy_batch_destroys_each_card(login, two_out):
    client = login("Servicecenter")
    _start(client, "destroy")
    for issuance in two_out:
        _scan(client, issuance.card.serial)
    page = _text(client.get("/returns/scan/"))
    assert "Korten destrueras" in page and "2 kort återlämnade." in page
    for issuance in two_out:
        assert _card(issuance.card.serial).status == "destroyed"
        assert audit_actions(issuance.card_id, "card")[-2:] == ["card.return", "card.destroy"]


def test_a_card_past_its_own_expiry_is_returned_but_not_restocked(login, two_out):
    issuance = two_out[0]
    db.session.execute(update(ReserveCard).where(ReserveCard.id == issuance.card_id)
                       .values(expires_on=clock.today() - timedelta(days=1)))
    db.session.commit()
    client = login("Servicecenter")
    _start(client, "restock")
    page = _text(_scan(client, issuance.card.serial))
    serial, result = _results(page)[0]
    assert serial == issuance.card.serial
    assert result.startswith("Kortet återlämnat: Återlämnat, men inte tillbaka i lager: "
                             f"Kortet {serial} har passerat")
    assert "Kortet väntar under Återlämningar." in result
    assert db.session.get(Issuance, issuance.id).status == "returned"
    assert _card(serial).status == "returned"  # awaiting destruction under Returns


def test_the_batch_survives_between_scans_until_it_is_ended(login, two_out):
    client = login("Servicecenter")
    _start(client, "restock")
    _scan(client, two_out[0].card.serial)
    assert two_out[0].card.serial in _text(client.get("/returns/scan/"))
    client.post("/returns/scan/end")
    page = _text(client.get("/returns/scan/"))
    assert 'name="then"' in page and two_out[0].card.serial not in page
    page = _text(_scan(client, two_out[1].card.serial))  # no batch: nothing returned
    assert "Starta en omgång först" in page
    assert db.session.get(Issuance, two_out[1].id).status != "returned"


def test_only_the_return_desk_roles_reach_the_scan_mode(login):
    assert login("Televäxeln").get("/returns/scan/").status_code == 403
    assert login("Korthandläggare").post("/returns/scan/",
                                         data={"serial": UNKNOWN}).status_code == 403


# --- the workflow's part --------------------------------------------------------------------

def test_return_scanned_refuses_with_a_rule_per_kind_of_bad_serial(app, as_user, two_out):
    with as_user("servicecenter"):
        with pytest.raises(RuleViolation) as unknown:
            lifecycle.return_scanned(UNKNOWN, "restock")
        assert (unknown.value.rule, unknown.value.field) == ("card_unknown", "serial")
        issuance, follow_up = lifecycle.return_scanned(two_out[0].card.serial, "destroy")
        assert follow_up is None and issuance.status == "returned"
        with pytest.raises(RuleViolation) as not_out:
            lifecycle.return_scanned(two_out[0].card.serial, "destroy")
        assert not_out.value.rule == "card_not_out"
        with pytest.raises(FieldError):
            lifecycle.return_scanned("12ab", "restock")
        with pytest.raises(FieldError):
            lifecycle.return_scanned(two_out[1].card.serial, "leave")
    assert db.session.get(Issuance, two_out[1].id).status == "awaiting_approval"
