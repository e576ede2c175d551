"""Televäxeln's approval queue through the screens, and what the role can and cannot reach."""


from app.extensions import db
from models import Issuance
from tests.workflow_support import apply, mails

ALL_CHECKS = {f"check_{key}": "1" for key in ("identity", "reason", "card", "attesters",
                                               "card_or_order", "reserve_order")}


def _status(issuance_id):
    db.session.expire_all()
    return db.session.get(Issuance, issuance_id).status


def test_queue_oldest_first_and_approve_with_every_check(login, as_user):
    first = apply(as_user)
    second = apply(as_user, recipient="Björn", reason="awaiting_new_card")
    client = login("Televäxeln")
    queue = client.get("/approval/")
    assert queue.status_code == 200
    assert queue.text.index(first.card.serial) < queue.text.index(second.card.serial)
    item = client.get(f"/approval/{first.id}")
    assert item.status_code == 200
    assert 'name="check_identity"' in item.text and "Anna Åkesson" in item.text
    response = client.post(f"/approval/{first.id}/approve",
                           data={**ALL_CHECKS, "kobe_reference": "KOBE-42"},
                           follow_redirects=True)
    assert "alert-success" in response.text
    assert _status(first.id) == "approved"
    assert mails("card_activation", issuance_id=first.id)
    assert first.card.serial not in client.get("/approval/").text


def test_a_missing_check_is_named_and_nothing_changes(login, as_user):
    issuance = apply(as_user)
    client = login("Televäxeln")
    checks = {k: v for k, v in ALL_CHECKS.items() if k != "check_card"}
    response = client.post(f"/approval/{issuance.id}/approve",
                           data={**checks, "kobe_reference": "KOBE-42"})
    assert response.status_code == 200
    message = response.text.split("alert-danger")[1].split("</div>")[0]
    assert "Kobe" in message and "kortnumret" in message.lower()  # names the missing check
    assert 'id="check_identity" name="check_identity" value="1" checked' in response.text
    assert _status(issuance.id) == "awaiting_approval"


def test_reject_with_a_reason(login, as_user):
    issuance = apply(as_user)
    client = login("Televäxeln")
    response = client.post(f"/approval/{issuance.id}/reject", data={"reason": ""})
    assert response.status_code == 200 and "alert-danger" in response.text
    assert _status(issuance.id) == "awaiting_approval"
    client.post(f"/approval/{issuance.id}/reject", data={"reason": "Ingen beställning i Kobe"})
    assert _status(issuance.id) == "rejected"


def test_televaxeln_reaches_nothing_else(login):
    client = login("Televäxeln")
    for url in ("/stock/cards/list/", "/stock/register/", "/stock/pickup-points/list/",
                "/issuances/list/", "/receipts/", "/returns/", "/registers/people/list/",
                "/registers/units/list/", "/registers/kobe/list/", "/registers/kobe-import/"):
        assert client.get(url).status_code == 403, url


def test_korthandlaggare_may_list_show_and_block_but_not_extend(login, as_user):
    issuance = apply(as_user)
    client = login("Korthandläggare")
    assert client.get("/issuances/list/").status_code == 200
    page = client.get(f"/issuances/show/{issuance.id}")
    assert page.status_code == 200
    assert "/block" in page.text and "/extend" not in page.text
    assert client.post(f"/issuances/{issuance.id}/extend",
                       data={"same_reason": "1"}).status_code == 403
    assert client.get("/approval/").status_code == 403
    client.post(f"/issuances/{issuance.id}/block", data={"reason": "förlorat", "confirm": "1"})
    assert _status(issuance.id) == "blocked"
