"""Servicecenter's desks as the daily users need them: registering envelopes has no silent
default pickup point and shows the new cards after saving; the receipts desk lists every
pending receipt with its days left, not only those due within two days."""

from datetime import timedelta

from sqlalchemy import func, select

from app import clock
from app.extensions import db
from models import PickupPoint, ReserveCard
from tests.workflow_support import apply


def _batch(client, **fields):
    data = {"product_code": "473", "loa": "LOA2",
            "expires_on": (clock.today() + timedelta(days=900)).isoformat(), **fields}
    return client.post("/stock/register/", data=data, content_type="multipart/form-data",
                       follow_redirects=True)


def _cards() -> int:
    db.session.expire_all()
    return db.session.execute(select(func.count(ReserveCard.id))).scalar()


def test_the_envelope_form_has_no_preselected_pickup_point(login):
    html = login("Servicecenter").get("/stock/register/").text
    select_html = html[html.index('id="pickup_point_id"'):]
    select_html = select_html[:select_html.index("</select>")]
    assert '<option value="" selected>Välj utlämningsplats</option>' in select_html
    assert select_html.count("selected") == 1


def test_envelopes_without_a_pickup_point_are_refused_naming_the_field(login):
    before = _cards()
    response = _batch(login("Servicecenter"), serials="3300000001\n3300000002")
    assert "Välj utlämningsplatsen där kuverten förvaras." in response.text
    assert _cards() == before


def test_after_saving_the_new_cards_are_shown(login):
    point = db.session.execute(select(PickupPoint).order_by(PickupPoint.id)).scalars().first()
    client = login("Servicecenter")
    response = _batch(client, serials="3300000011\n3300000012\n3300000013",
                      pickup_point_id=str(point.id))
    assert "3 kuvert registrerade" in response.text
    panel = response.text[response.text.index("rk-just-registered"):]
    panel = panel[:panel.index("</section>")]
    assert "Nyss registrerade: 3 kuvert" in panel
    for serial in ("3300000011", "3300000012", "3300000013"):
        assert f">{serial}</a>" in panel
    assert point.name in panel
    # shown once: the next visit of the stock list is the plain list
    assert "rk-just-registered" not in client.get("/stock/cards/list/").text


def test_the_receipts_desk_lists_every_pending_receipt_with_its_days_left(login, as_user,
                                                                         set_now):
    start = set_now(clock.now().replace(hour=9, minute=0, second=0, microsecond=0))
    issuance = apply(as_user)  # receipt due in 7 days: not "due within 2 days"
    set_now(start + timedelta(days=1))
    page = login("Servicecenter").get("/receipts/").text
    pending = page.split("receipts-due-soon")[1]
    assert "Väntande kvittenser" in page
    row = pending[pending.index(issuance.card.serial):]
    assert 'class="rk-days">6</td>' in row[:row.index("</tr>")]


def test_the_receipts_desk_counts_them_all_and_says_when_it_shows_only_the_first(
        login, as_user, monkeypatch):
    import views.issuances

    apply(as_user)
    apply(as_user, recipient="Björn", reason="awaiting_new_card")
    monkeypatch.setattr(views.issuances, "RECEIPTS_SHOWN", 1)
    page = login("Servicecenter").get("/receipts/").text
    assert "Väntande kvittenser (2)" in page and "Försenade kvittenser (0)" in page
    assert "De 1 mest brådskande av 2 visas" in page
