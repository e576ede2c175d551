"""Servicecenter's daily paths through the screens: envelopes, stock, receipts, blocking,
extension and returns."""

import io
from datetime import datetime, timedelta

from sqlalchemy import select

from app import clock
from app.extensions import db
from models import AuditEvent, Issuance, PickupPoint, ReserveCard
from tests.workflow_support import apply, approve, count, free_cards
from views.stock import expiry_with_warning

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 64


def _points():
    return db.session.execute(select(PickupPoint).order_by(PickupPoint.id)).scalars().all()


def _batch(client, **fields):
    data = {"product_code": "473", "loa": "LOA2", "pickup_point_id": str(_points()[0].id),
            "expires_on": (clock.today() + timedelta(days=900)).isoformat(), **fields}
    return client.post("/stock/register/", data=data, content_type="multipart/form-data",
                       follow_redirects=True)


def _card(serial) -> ReserveCard:
    db.session.expire_all()
    return db.session.execute(select(ReserveCard).where(ReserveCard.serial == serial)).scalar_one()


def _issuance(issuance_id) -> Issuance:
    db.session.expire_all()
    return db.session.get(Issuance, issuance_id)


# --- envelopes and stock --------------------------------------------------------------------

def test_batch_from_a_pasted_list_and_a_file(login):
    client = login("Servicecenter")
    page = client.get("/stock/register/")
    assert page.status_code == 200 and 'name="serials"' in page.text
    response = _batch(client, serials="1100000001\n1100000002, 1100000003")
    assert "3 kuvert registrerade" in response.text
    response = _batch(client, serial_file=(io.BytesIO(b"1100000004\r\n1100000005\r\n"),
                                           "serials.csv"))
    assert "2 kuvert registrerade" in response.text
    assert _card("1100000005").status == "in_stock"


def test_batch_from_a_range(login):
    client = login("Servicecenter")
    response = _batch(client, first="2200000001", last="2200000010", loa="LOA3")
    assert "10 kuvert registrerade" in response.text
    assert _card("2200000010").loa == "LOA3"


def test_batch_with_a_bad_serial_saves_nothing(login):
    client = login("Servicecenter")
    before = count(ReserveCard)
    response = _batch(client, serials="3300000001\n33-bad\n3300000003\n\n12ab, 3300000005")
    assert response.status_code == 200
    assert "Ett kortnummer består av 6 till 20 siffror." in response.text
    # Every bad line is named, with what it holds, and what to do.
    assert "rad 2 (”33-bad”), rad 5 (”12ab”)" in response.text
    assert "Rätta eller ta bort de raderna" in response.text
    assert count(ReserveCard) == before
    assert "3300000001" in response.text  # the form keeps what was typed


def test_batch_with_a_known_serial_saves_nothing(login):
    client = login("Servicecenter")
    known = free_cards(1)[0]
    before = count(ReserveCard)
    response = _batch(client, serials=f"4400000001\n{known}")
    assert known in response.text and "alert-danger" in response.text
    assert "Ta bort dem ur listan" in response.text
    assert count(ReserveCard) == before


def test_stock_list_warns_near_expiry_and_below_min_stock(login, app):
    client = login("Servicecenter")
    first = _points()[0]
    first.min_stock = 1000
    db.session.commit()
    page = client.get("/stock/cards/list/")
    assert page.status_code == 200
    assert "below-min-stock" in page.text  # the summary row of the first pickup point
    assert "card-expiry-warning" in page.text  # the demo has cards near their own expiry
    # oldest expiry first, 25 to a page
    by_expiry = db.session.execute(select(ReserveCard.serial)
                                   .order_by(ReserveCard.expires_on)).scalars().all()
    assert by_expiry[0] in page.text and by_expiry[-1] not in page.text
    assert by_expiry[-1] in client.get("/stock/cards/list/?page_CardView=1").text


def test_move_and_mark_lost(login):
    client = login("Servicecenter")
    serial = free_cards(1)[0]
    card = _card(serial)
    other = next(p for p in _points() if p.id != card.pickup_point_id)
    page = client.get(f"/stock/cards/show/{card.id}")
    assert page.status_code == 200 and "pickup_point_id" in page.text
    client.post(f"/stock/cards/{card.id}/move", data={"pickup_point_id": other.id})
    assert _card(serial).pickup_point_id == other.id
    # without the confirmation nothing happens
    client.post(f"/stock/cards/{card.id}/lost", data={"note": "tappat"})
    assert _card(serial).status == "in_stock"
    response = client.post(f"/stock/cards/{card.id}/lost", data={"note": "tappat", "confirm": 1},
                           follow_redirects=True)
    assert _card(serial).status == "lost"
    # a refused step is a message, not an error page
    response = client.post(f"/stock/cards/{card.id}/move", data={"pickup_point_id": other.id},
                           follow_redirects=True)
    assert response.status_code == 200 and "alert-danger" in response.text


def test_pickup_point_form(login):
    client = login("Servicecenter")
    response = client.post("/stock/pickup-points/add", data={
        "name": "Reception Kungsbacka", "address": "Lasarettsvägen 2", "min_stock": "3",
        "active": "y"}, follow_redirects=True)
    assert response.status_code == 200
    point = db.session.execute(select(PickupPoint).where(
        PickupPoint.name == "Reception Kungsbacka")).scalar_one()
    assert point.min_stock == 3
    assert count(AuditEvent, AuditEvent.entity == "pickup_point",
                 AuditEvent.entity_id == point.id) == 1


# --- issuances: list, receipts, blocking, extension, return --------------------------------

def test_issuance_list_search_and_detail_history(login, as_user):
    issuance = apply(as_user)
    serial = issuance.card.serial
    client = login("Servicecenter")
    page = client.get(f"/issuances/list/?q={serial}")
    assert page.status_code == 200 and serial in page.text
    page = client.get("/issuances/list/?q=0000000000")
    assert serial not in page.text
    page = client.get(f"/issuances/show/{issuance.id}")
    assert page.status_code == 200
    # the history names the person behind the login
    assert "Ansökan registrerad" in page.text and "Gustav Gran" in page.text


def test_receipts_due_soon_and_overdue_are_listed(login, as_user, set_now):
    start = set_now(clock.now().replace(hour=9, minute=0, second=0, microsecond=0))
    late = apply(as_user)  # receipt due in 7 days
    set_now(start + timedelta(days=3))
    soon = apply(as_user, recipient="Björn", reason="awaiting_new_card")  # due 3 days later
    set_now(start + timedelta(days=9))
    page = login("Servicecenter").get("/receipts/").text
    overdue, due_soon = page.split("receipts-overdue")[1].split("receipts-due-soon")
    assert late.card.serial in overdue and 'class="rk-days">2</td>' in overdue
    assert soon.card.serial in due_soon and 'class="rk-days">1</td>' in due_soon


def test_receipt_by_serial_with_a_scan(login, as_user, app):
    issuance = apply(as_user)
    serial = issuance.card.serial
    client = login("Servicecenter")
    assert "data-card-serial" in client.get("/receipts/").text
    response = client.post("/receipts/", data={"serial": serial,
                                               "scan": (io.BytesIO(PNG), "k.png")},
                           content_type="multipart/form-data", follow_redirects=True)
    assert response.status_code == 200 and "alert-success" in response.text
    assert _issuance(issuance.id).receipt.received_at is not None
    assert _issuance(issuance.id).receipt.scan_mime == "image/png"


def test_receipt_scan_of_the_wrong_kind_or_too_large_is_refused(login, as_user, app):
    issuance = apply(as_user)
    serial = issuance.card.serial
    client = login("Servicecenter")
    for content, name in ((b"MZ\x90\x00" + b"\x00" * 200, "virus.exe"),
                          (b"just some text", "kvittens.txt")):
        response = client.post("/receipts/", data={"serial": serial,
                                                   "scan": (io.BytesIO(content),
                                                            name)},
                               content_type="multipart/form-data", follow_redirects=True)
        assert "PDF, JPEG eller PNG" in response.text or "PDF, JPEG or PNG" in response.text
    app.config["MAX_UPLOAD_BYTES"] = 100
    response = client.post(f"/issuances/{issuance.id}/receipt",
                           data={"scan": (io.BytesIO(PNG + b"\x00" * 200), "k.png")},
                           content_type="multipart/form-data", follow_redirects=True)
    assert response.status_code == 200 and "alert-danger" in response.text
    assert _issuance(issuance.id).receipt.received_at is None


def test_unknown_serial_at_the_receipt_desk_is_a_message(login):
    client = login("Servicecenter")
    response = client.post("/receipts/", data={"serial": "123456789"}, follow_redirects=True)
    assert response.status_code == 200 and "alert-danger" in response.text


def test_block_needs_confirmation_and_a_reason(login, as_user):
    issuance = apply(as_user)
    client = login("Servicecenter")
    client.post(f"/issuances/{issuance.id}/block", data={"reason": "kvittens saknas"})
    assert _issuance(issuance.id).status == "awaiting_approval"
    client.post(f"/issuances/{issuance.id}/block", data={"reason": "kvittens saknas",
                                                         "confirm": "1"})
    assert _issuance(issuance.id).status == "blocked"


def test_extend_once(login, as_user):
    issuance = apply(as_user)
    approve(as_user, issuance.id)
    client = login("Servicecenter")
    old_end = _issuance(issuance.id).valid_until
    response = client.post(f"/issuances/{issuance.id}/extend", data={"same_reason": "1"},
                           follow_redirects=True)
    assert "alert-success" in response.text
    assert _issuance(issuance.id).valid_until > old_end
    response = client.post(f"/issuances/{issuance.id}/extend", data={"same_reason": "1"},
                           follow_redirects=True)
    assert "redan förlängts" in response.text or "already been extended" in response.text


def test_return_with_restock_and_the_returns_desk(login, as_user):
    first = apply(as_user)
    client = login("Servicecenter")
    response = client.post(f"/issuances/{first.id}/return",
                           data={"then": "restock", "confirm": "1"}, follow_redirects=True)
    assert "alert-success" in response.text
    assert _issuance(first.id).status == "returned"
    assert _issuance(first.id).card.status == "in_stock"
    second = apply(as_user, recipient="Björn", reason="awaiting_new_card")
    serial = second.card.serial
    page = client.get("/returns/")
    assert "data-card-serial" in page.text
    client.post("/returns/", data={"serial": serial, "then": ""})
    assert _card(serial).status == "returned"
    page = client.get("/returns/")
    assert serial in page.text
    client.post(f"/returns/{_card(serial).id}/destroy", data={"confirm": "1"})
    assert _card(serial).status == "destroyed"


def test_list_pages_do_not_run_a_query_per_row(login, as_user):
    from sqlalchemy import event

    client = login("Servicecenter")
    statements = []

    def _count(*args):
        statements.append(1)

    def statements_for(url):
        statements.clear()
        event.listen(db.engine, "before_cursor_execute", _count)
        try:
            assert client.get(url).status_code == 200
        finally:
            event.remove(db.engine, "before_cursor_execute", _count)
        return len(statements)

    def warm_statements_for(url):
        # The first request after a workflow call loads the user and clearance once; only the
        # statements that follow the rows count here.
        statements_for(url)
        return statements_for(url)

    apply(as_user)
    one = warm_statements_for("/issuances/list/")
    for name, reason in (("Björn", "awaiting_new_card"), ("Cecilia", "temporary_assignment"),
                         ("Helena", "forgotten")):
        apply(as_user, recipient=name, reason=reason, attesters=("Nils",))
    assert warm_statements_for("/issuances/list/") == one
    assert statements_for("/stock/cards/list/") < 15


def test_issuance_page_reads_as_swedish_local_time_and_words(login, as_user, set_now):
    set_now(datetime(2026, 3, 2, 8, 5, 30, 123456))  # UTC; 09:05 in Stockholm
    issuance = apply(as_user)
    approve(as_user, issuance.id)
    client = login("Servicecenter")
    page = client.get(f"/issuances/show/{issuance.id}").text
    table = page.split("issuance-history")[0]
    assert ">None<" not in table and ">Orsak till spärr</th>" not in table  # empty: left out
    assert "2026-03-02 09:05" in page and "08:05" not in page and "123456" not in page
    history = page.split("issuance-history")[1]
    assert "Ansökan registrerad" in history and "Utgivning godkänd" in history
    assert "issuance.apply" not in history and "checks_confirmed" not in history
    assert "Mottagarens identitet ✓" in history and "Godkänd" in history
    receipt_form = f'action="/issuances/{issuance.id}/receipt"'
    assert receipt_form in page
    client.post(f"/issuances/{issuance.id}/receipt")
    page = client.get(f"/issuances/show/{issuance.id}").text
    assert receipt_form not in page and "Kvittens registrerad" in page


def test_a_card_past_its_own_expiry_reads_expired(app):
    today = clock.today()
    with app.test_request_context():
        past = str(expiry_with_warning(today - timedelta(days=1)))
        soon = str(expiry_with_warning(today + timedelta(days=1)))
    assert "utgånget" in past and "rk-danger" in past and "går snart ut" not in past
    assert "går snart ut" in soon and "rk-danger" not in soon
