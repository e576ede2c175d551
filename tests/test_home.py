"""The start page: each role's own counts of what to do today, in Swedish, linking to their
lists; no chart repeating them."""

import re
from datetime import date, timedelta

import pytest

from tests.workflow_support import apply, approve, at

DAY = date(2026, 3, 2)


@pytest.fixture
def known_setup(as_user, set_now, demo_person):
    """Two cards out: Anna's awaits approval (receipt due DAY+7, overdue on DAY+8); Björn's is
    approved (applied DAY+3, receipt due DAY+10: due within 2 days on DAY+8). Two open
    deviations: one in the Chef's unit, one elsewhere."""
    from app.workflow import deviations

    set_now(at(DAY))
    apply(as_user, recipient="Anna")
    set_now(at(DAY + timedelta(days=3)))
    bjorn = apply(as_user, recipient="Björn", reason="awaiting_new_card")
    approve(as_user, bjorn.id)
    with as_user("Servicecenter"):
        deviations.create("manual", "Uppföljning", person_hsa_id=demo_person("Anna").hsa_id)
        deviations.create("card_lost", "Borta", person_hsa_id=demo_person("Cecilia").hsa_id)
    set_now(at(DAY + timedelta(days=8)))


def _counts(page) -> dict:
    return {key: int(value) for key, value in
            re.findall(r'data-count="(\w+)" data-value="(\d+)"', page)}


def test_servicecenter_counts(login, known_setup):
    page = login("Servicecenter").get("/").get_data(as_text=True)
    assert _counts(page) == {"receipts_due_soon": 1, "receipts_overdue": 1, "cards_out": 2,
                             "expired_not_returned": 0, "cards_to_restock": 0,
                             "open_deviations": 2}
    assert "Kvittenser som förfaller inom 2 dagar" in page
    assert "Försenade kvittenser" in page and "Öppna avvikelser" in page


def test_televaxeln_sees_the_approval_queue_count(login, known_setup):
    page = login("Televäxeln").get("/").get_data(as_text=True)
    assert _counts(page) == {"awaiting_approval": 1}
    assert "Väntar på godkännande" in page


def test_chef_counts_only_own_units_deviations(login, known_setup):
    page = login("Chef").get("/").get_data(as_text=True)
    assert _counts(page) == {"open_deviations": 1}
    assert 'href="/deviations/list/?_flt_7_status=closed"' in page


def test_korthandlaggare_counts(login, known_setup):
    page = login("Korthandläggare").get("/").get_data(as_text=True)
    assert _counts(page) == {"mail_in_progress": 0, "cards_out": 2, "expired_not_returned": 0}
    assert "Pågående rekommenderad post" in page


def test_admin_sees_what_admin_does(login, known_setup):
    """Admin keeps the system running and does no daily work (separation of duties): failed
    e-mails and locked accounts, with the overview of cards out and open deviations; every
    count links to a screen Admin may open."""
    page = login("Admin").get("/").get_data(as_text=True)
    assert _counts(page) == {"cards_out": 2, "open_deviations": 2, "failed_emails": 0,
                             "locked_accounts": 0}
    assert _links(page) == {"cards_out": "/issuances/list/?_flt_0_status=out",
                            "open_deviations": "/deviations/list/?_flt_7_status=closed",
                            "failed_emails": "/admin/jobs/",
                            "locked_accounts": "/admin/signin-locks/"}
    assert "E-post som inte kunde skickas" in page and "Låsta konton" in page


def test_admin_counts_failed_emails_and_locked_accounts(login, known_setup, app):
    from app import signin_limits
    from app.extensions import db
    from models import OutboxMessage

    db.session.query(OutboxMessage).filter(OutboxMessage.id.in_(
        db.session.query(OutboxMessage.id).limit(2).scalar_subquery())).update(
        {"status": "failed"}, synchronize_session=False)
    db.session.commit()
    for _ in range(app.config["SIGNIN_ACCOUNT_FAILURES"]):
        signin_limits.record_failure("televaxeln")
    counts = _counts(login("Admin").get("/").get_data(as_text=True))
    assert (counts["failed_emails"], counts["locked_accounts"]) == (2, 1)


def test_admin_who_may_operate_sees_every_count(login, known_setup, app, monkeypatch):
    monkeypatch.setitem(app.config, "ADMIN_MAY_OPERATE", True)
    counts = _counts(login("Admin").get("/").get_data(as_text=True))
    assert counts["awaiting_approval"] == 1 and counts["open_deviations"] == 2
    assert len(counts) == 10


def test_an_overdue_receipt_still_counts_once_the_sweep_has_blocked_the_card(
        login, known_setup, set_now):
    """The sweep blocks a card the day after its receipt deadline; the receipt is still
    awaited (it can still be registered), so it stays on Servicecenter's overdue count."""
    from app.extensions import db
    from app.workflow import sweeps
    from models import Issuance

    assert sweeps.run_all()["receipts_blocked"] == 1
    blocked = db.session.query(Issuance).filter(Issuance.status == "blocked").one()
    page = login("Servicecenter").get("/").get_data(as_text=True)
    assert _counts(page)["receipts_overdue"] == 1
    # ... and the receipts desk behind the count lists it
    assert blocked.card.serial in login("Servicecenter").get("/receipts/").get_data(
        as_text=True)


def test_no_chart_repeats_the_counts(login, known_setup):
    page = login("Admin").get("/").get_data(as_text=True)
    assert len(_counts(page)) == 4
    assert "<svg" not in page and "rk-bar" not in page and "<canvas" not in page
    assert "Att göra i dag" in page


def test_each_count_link_names_what_it_counts(login, known_setup):
    page = login("Televäxeln").get("/").get_data(as_text=True)
    assert re.search(r'<a href="/approval/">1<span class="sr-only"> – Väntar på godkännande'
                     r'</span></a>', page)


def test_intygsgivare_is_offered_a_new_application(login, known_setup):
    page = login("Intygsgivare").get("/").get_data(as_text=True)
    assert re.search(r'<a class="btn btn-primary btn-lg" href="/ansokan/">Ny ansökan</a>', page)


def test_intygsgivare_has_no_counts(login, known_setup):
    page = login("Intygsgivare").get("/").get_data(as_text=True)
    assert _counts(page) == {} and "<svg" not in page
    assert "Välkommen, Gustav." in page


def test_anonymous_sees_a_login_link(client):
    page = client.get("/").get_data(as_text=True)
    assert 'href="/login/"' in page and "Logga in" in page
    assert "data-count" not in page


def _links(page) -> dict:
    """count key -> link, for the count panels whose number is a link."""
    return dict(re.findall(r'data-count="(\w+)" data-value="\d+">\s*'
                           r'<div class="panel-heading">[^<]*</div>\s*'
                           r'<div class="panel-body">\s*<a href="([^"]+)"', page))


def test_servicecenter_counts_link_to_their_screens(login, known_setup):
    page = login("Servicecenter").get("/").get_data(as_text=True)
    links = _links(page)
    assert len(links) == 6
    assert links["receipts_overdue"] == "/receipts/" and links["receipts_due_soon"] == "/receipts/"
    assert links["cards_to_restock"] == "/returns/"
    # A list that shows more than the count opens filtered to the rows counted.
    assert links["expired_not_returned"] == "/issuances/list/?_flt_3_status=expired"
    assert links["cards_out"] == "/issuances/list/?_flt_0_status=out"
    assert links["open_deviations"] == "/deviations/list/?_flt_7_status=closed"


def test_televaxeln_count_links_to_the_approval_queue(login, known_setup):
    page = login("Televäxeln").get("/").get_data(as_text=True)
    assert _links(page) == {"awaiting_approval": "/approval/"}


@pytest.mark.parametrize("role", ["Servicecenter", "Admin", "Korthandläggare", "Chef"])
def test_a_count_opens_a_list_of_the_rows_it_counts(login, known_setup, as_user, role):
    """Every count that links to a list screen opens it filtered to as many rows as it says,
    also when the list holds ended issuances (a returned one here)."""
    from app.extensions import db
    from app.workflow import lifecycle

    returned = apply(as_user, recipient="Cecilia")
    with as_user("Servicecenter"):
        lifecycle.return_card(returned.id)
    db.session.commit()
    client = login(role)
    page = client.get("/").get_data(as_text=True)
    counts, links = _counts(page), _links(page)
    listed = {key: link for key, link in links.items() if "/list/" in link}
    assert listed, f"{role} has no count that opens a list"
    for key, link in listed.items():
        shown = client.get(link).get_data(as_text=True)
        total = re.search(r"<strong>Antal poster:</strong>\s*(\d+)", shown)
        assert total and int(total.group(1)) == counts[key], (key, link)
