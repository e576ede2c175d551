"""Administration: the read-only audit log with its chain check, and organisation types."""

import re

from sqlalchemy import func, select, update

from app import audit
from app.extensions import db
from models import AuditEvent, OrganisationType


def _last_event_id():
    return db.session.execute(select(func.max(AuditEvent.id))).scalar_one()


def test_admin_sees_the_log_newest_first_and_intact(login):
    client = login("Admin")
    page = client.get("/audit-log/list/").get_data(as_text=True)
    assert 'data-verify="unknown"' in page and "inte kontrollerats än" in page
    checkpoint = audit.checkpoint()
    page = client.get("/audit-log/list/").get_data(as_text=True)
    assert "Granskningsloggen är intakt" in page
    assert 'data-verify="ok"' in page
    assert f"kontrollpunkt vid rad {checkpoint.head_id}, sigill {checkpoint.mac[:16]}" in page
    shown = [int(n) for n in re.findall(r'href="/audit-log/show/(\d+)"', page)]
    assert shown and shown[0] == _last_event_id()
    assert shown == sorted(shown, reverse=True)


def test_a_tampered_row_is_reported_at_the_top_after_the_next_verification(login):
    client = login("Admin")
    audit.checkpoint()
    target = _last_event_id() - 1
    db.session.execute(update(AuditEvent).where(AuditEvent.id == target)
                       .values(actor="someone-else"))
    db.session.commit()
    # A page view shows the last verification; it never walks the whole chain itself.
    assert 'data-verify="ok"' in client.get("/audit-log/list/").get_data(as_text=True)
    audit.checkpoint()
    page = client.get("/audit-log/list/").get_data(as_text=True)
    assert 'data-verify="broken"' in page
    assert f"Granskningsloggen är bruten vid rad {target}: raden har ändrats." in page


def test_filter_by_action(login):
    client = login("Admin")
    # the actions read in words (app/labels.py); the filter chooses them by their words too
    page = client.get("/audit-log/list/?_flt_3_action=demo.load").get_data(as_text=True)
    assert "<td>Demodata inläst</td>" in page and "<td>Inloggning skapad</td>" not in page
    page = client.get("/audit-log/list/?_flt_3_action=user.create").get_data(as_text=True)
    assert "<td>Inloggning skapad</td>" in page and "<td>Demodata inläst</td>" not in page
    # (the filter's choices travel to the page's script as JSON)
    assert 'value=\\"user.create\\"\\u003eInloggning skapad\\u003c/option' in page


def test_show_page_has_before_and_after(login):
    event_id = db.session.execute(
        select(AuditEvent.id).where(AuditEvent.action == "user.create").limit(1)
    ).scalar_one()
    page = login("Admin").get(f"/audit-log/show/{event_id}").get_data(as_text=True)
    assert "Efter" in page and "Användarnamn" in page


def test_the_log_cannot_be_changed_through_the_screens(login):
    client = login("Admin")
    event_id = _last_event_id()
    assert client.get("/audit-log/add").status_code == 404
    assert client.get(f"/audit-log/edit/{event_id}").status_code == 404
    assert client.get(f"/audit-log/delete/{event_id}").status_code == 404
    assert _last_event_id() == event_id


def test_other_roles_get_403(login):
    for role in ("Servicecenter", "Televäxeln", "Korthandläggare", "Chef", "Intygsgivare"):
        client = login(role)
        assert client.get("/audit-log/list/").status_code == 403, role
        assert client.get("/organisation-types/list/").status_code == 403, role


def test_admin_changes_the_attester_count_of_an_organisation_type(login):
    client = login("Admin")
    page = client.get("/organisation-types/list/").get_data(as_text=True)
    assert "Antal intygsgivare som krävs" in page and "Kommun" in page
    refused = client.post("/organisation-types/edit/municipality",
                          data={"name": "Kommun", "attesters_required": "7"})
    assert refused.status_code == 200
    db.session.expire_all()
    assert db.session.get(OrganisationType, "municipality").attesters_required == 2
    answer = client.post("/organisation-types/edit/municipality",
                         data={"name": "Kommun", "attesters_required": "1"})
    assert answer.status_code == 302
    db.session.expire_all()
    assert db.session.get(OrganisationType, "municipality").attesters_required == 1
    event = db.session.execute(
        select(AuditEvent).where(AuditEvent.action == "org_type.update")
    ).scalar_one()
    assert event.before["attesters_required"] == 2 and event.after["attesters_required"] == 1
    assert event.actor == "admin"
    audit.checkpoint()
    ok = login("Admin").get("/audit-log/list/").get_data(as_text=True)
    assert 'data-verify="ok"' in ok
