"""The issuance page as Servicecenter and the card handlers read it: it leads with the status
(the receipt received too), what is due next and the actions the role may take there; empty
fields are left out; the history names people (masked for protected identity) in Swedish
local time to the minute. What is due next is the workflow's answer (queries.due_next)."""

import html
import re
from datetime import datetime, timedelta

import pytest

from app.extensions import db
from app.workflow import lifecycle, queries, stock
from models import Issuance
from tests.workflow_support import apply, approve, force_status, free_cards, person

START = datetime(2026, 3, 2, 8, 5)  # UTC; 09:05 in Stockholm


@pytest.fixture(autouse=True)
def _frozen(set_now):
    set_now(START)


def _page(client, issuance_id) -> str:
    return html.unescape(client.get(f"/issuances/show/{issuance_id}").get_data(as_text=True))


def _state(page) -> str:
    """The part above the details: status, what is due next, the actions offered."""
    return page[page.index("rk-issuance-state"):page.index("</section>")]


def _history(page) -> str:
    return page[page.index("issuance-history"):]


def _codes(issuance_id) -> list[str]:
    db.session.expire_all()
    return [item["code"] for item in queries.due_next(db.session.get(Issuance, issuance_id))]


def test_the_page_leads_with_status_what_is_due_and_the_actions(login, as_user):
    issuance = apply(as_user)  # receipt due in 7 days, awaiting approval
    page = _page(login("Servicecenter"), issuance.id)
    assert page.index("rk-issuance-state") < page.index("rk-show")  # before the details
    state = _state(page)
    assert "Väntar på godkännande" in state
    assert "Väntar på godkännande av Televäxeln" in state
    assert "Kvittensen ska vara inne senast 2026-03-09, om 7 dagar" in state
    offered = re.findall(r'href="#action-(\w+)">([^<]+)<', state)
    assert offered == [("receipt", "Registrera kvittens"), ("block", "Spärra"),
                       ("return", "Återlämna"), ("lost", "Anmäl förlorat")]
    for name, _words in offered:  # each leads to its form on the page
        assert f'id="action-{name}"' in page


def test_the_receipt_received_shows_in_the_status_and_the_return_date_is_due(login, as_user):
    issuance = apply(as_user)
    approve(as_user, issuance.id)
    client = login("Servicecenter")
    client.post(f"/issuances/{issuance.id}/receipt")
    state = _state(_page(client, issuance.id))
    assert re.search(r"Godkänd</span>\s*·\s*<span class=\"rk-receipt-in\">Kvittens mottagen",
                     state)
    assert "Kvittensen ska" not in state
    assert "Kortet ska lämnas tillbaka senast 2026-03-12, om 10 dagar" in state
    assert 'href="#action-extend"' in state and 'href="#action-receipt"' not in state


def test_the_actions_offered_are_the_roles_own(login, as_user):
    issuance = apply(as_user)
    approve(as_user, issuance.id)
    handler = _state(_page(login("Korthandläggare"), issuance.id))
    assert re.findall(r'href="#action-(\w+)"', handler) == ["block", "lost"]
    admin = _page(login("Admin"), issuance.id)  # reads issuances, does not operate
    assert "rk-offered" not in _state(admin) and 'id="action-' not in admin


def test_empty_fields_are_left_out(login, as_user):
    issuance = apply(as_user)
    page = _page(login("Servicecenter"), issuance.id)
    details = page[page.index("rk-show"):page.index("issuance-history")]
    for label in ("Kobe-referens", "Godkänd", "Orsak till spärr", "Återlämnad", "Uppdrag"):
        assert f">{label}</th>" not in details
    assert "Kvittens mottagen" not in details  # not in yet: no line with a dash either


def test_the_history_names_people_in_local_time(login, as_user):
    issuance = apply(as_user)  # by intygsgivare1, Gustav Gran
    approve(as_user, issuance.id)  # by televaxeln, Maria Malm
    history = _history(_page(login("Servicecenter"), issuance.id))
    assert '<td data-label="Vem" class="rk-who">Gustav Gran</td>' in history
    assert '<td data-label="Vem" class="rk-who">Maria Malm</td>' in history
    assert "intygsgivare1" not in history and "televaxeln" not in history
    assert "<strong>Mottagare</strong>: Anna Åkesson" in history
    assert "<strong>Intygsgivare</strong>: Gustav Gran, Helena Håkansson" in history
    assert person("Anna").hsa_id not in history
    assert '<td data-label="När">2026-03-02 09:05</td>' in history


def test_the_history_names_the_system_for_what_the_sweeps_did(login, as_user, set_now):
    from app.workflow import sweeps

    issuance = apply(as_user)
    later = set_now(START + timedelta(days=9))  # receipt deadline passed: blocked
    sweeps.run_all(later)
    history = _history(_page(login("Servicecenter"), issuance.id))
    assert '<td data-label="Vem" class="rk-who">Systemet (automatiskt)</td>' in history
    assert ">system<" not in history


def test_the_history_masks_a_protected_recipient_without_clearance(login, as_user):
    issuance = apply(as_user)
    anna = person("Anna")
    anna.protected_identity = True
    db.session.commit()
    page = _page(login("Servicecenter"), issuance.id)
    assert "Anna Åkesson" not in page
    assert "<strong>Mottagare</strong>: Skyddad identitet" in _history(page)


# --- what is due next: the workflow's answer ------------------------------------------------

def test_due_next_follows_the_issuance_through_its_life(app, as_user, set_now):
    issuance = apply(as_user)
    assert _codes(issuance.id) == ["awaiting_approval", "receipt_due"]
    set_now(START + timedelta(days=8))
    assert _codes(issuance.id) == ["awaiting_approval", "receipt_overdue"]
    set_now(START)
    approve(as_user, issuance.id)
    with as_user("servicecenter"):
        lifecycle.register_receipt(issuance.id)
    assert _codes(issuance.id) == ["return_by"]
    force_status(issuance.id, "expired")
    assert _codes(issuance.id) == ["return_overdue"]
    force_status(issuance.id, "blocked")
    assert _codes(issuance.id) == ["return_now"]
    with as_user("servicecenter"):
        lifecycle.return_card(issuance.id)
    assert _codes(issuance.id) == ["restock_or_destroy"]
    with as_user("servicecenter"):
        stock.restock(issuance.card.serial)
    assert _codes(issuance.id) == []


def test_due_next_of_the_registered_mail_flow(app, as_user):
    from app.workflow import mail_flow

    with as_user("korthandlaggare"):
        issuance = mail_flow.prepare(free_cards(1)[0], person("Björn").hsa_id,
                                     "awaiting_new_card", "Storgatan 1, 302 50 Halmstad",
                                     "Distansarbete, ingen behörig administratör på plats")
    assert _codes(issuance.id) == ["mail_dispatch"]
    with as_user("korthandlaggare"):
        mail_flow.dispatched(issuance.id, "RR123456785SE")
    assert _codes(issuance.id) == ["receipt_due"]
    with as_user("korthandlaggare"):
        mail_flow.receipt_returned(issuance.id)
    assert _codes(issuance.id) == ["certificate_to_issue"]


def test_nothing_due_reads_so(login, as_user):
    issuance = apply(as_user)
    with as_user("servicecenter"):
        lifecycle.return_card(issuance.id, "destroy")
    state = _state(_page(login("Servicecenter"), issuance.id))
    assert "Inget mer återstår för den här utgivningen." in state
    assert "rk-offered" not in state
