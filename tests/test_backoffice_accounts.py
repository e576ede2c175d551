"""Admin's "User links": each login account linked to its person (with the clearance for
protected identity), changed and removed through the workflow with an audit row; nobody else may
open the screen."""

import pytest
from sqlalchemy import event, select

from app import accounts
from app.extensions import db
from app.security import person_for_user
from models import AccountLink, AuditEvent

ANNA = "SE2321000131-E000000000001"
URL = "/admin/user-links/"


@pytest.fixture
def unlinked_user(app):
    """A demo login with no person (created without an HSA-id)."""
    user = accounts.create_user("demo-utan-person", "Reservkort-demo-2026", ["Servicecenter"])
    return user.id


def _user(app, user_id):
    db.session.expire_all()
    return db.session.get(app.appbuilder.sm.user_model, user_id)


def _link(user_id):
    db.session.expire_all()
    return db.session.execute(
        select(AccountLink).where(AccountLink.user_id == user_id)).scalar_one_or_none()


def _audit(action):
    return db.session.execute(
        select(AuditEvent).where(AuditEvent.action == action)).scalars().all()


def test_list_shows_users_roles_and_linked_people(app, login, unlinked_user):
    page = login("Admin").get(URL).get_data(as_text=True)
    assert "Användarkopplingar" in page
    assert "intygsgivare1" in page and "Gustav Gran (SE2321000131-E000000000007)" in page
    assert "demo-utan-person" in page and "Inte kopplat" in page
    assert "Intygsgivare" in page and "Servicecenter" in page


def test_search_by_username_or_hsa_id(app, login, unlinked_user):
    admin = login("Admin")
    page = admin.get(URL, query_string={"q": "E000000000007"}).get_data(as_text=True)
    assert "intygsgivare1" in page and "intygsgivare2" not in page
    page = admin.get(URL, query_string={"q": "utan-person"}).get_data(as_text=True)
    assert "demo-utan-person" in page and "intygsgivare1" not in page


def test_list_page_costs_no_query_per_user(app, login, unlinked_user):
    admin = login("Admin")
    statements = []

    def count(*_args):
        statements.append(1)

    def statements_for(search):
        db.session.expire_all()  # requests share the test's session: nothing loaded before
        statements.clear()
        event.listen(db.engine, "before_cursor_execute", count)
        try:
            assert admin.get(URL, query_string={"q": search}).status_code == 200
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        return len(statements)

    statements_for("")  # the first page after login loads the menu's permissions once
    # One user on the page or all eight: the same number of statements.
    assert statements_for("demo-utan") == statements_for("")


def test_admin_links_a_user_to_a_person_with_an_audit_row(app, login, unlinked_user):
    response = login("Admin").post(f"{URL}{unlinked_user}/link", data={"hsa_id": ANNA},
                                   follow_redirects=True)
    assert response.status_code == 200
    assert f"demo-utan-person är kopplat till {ANNA}." in response.get_data(as_text=True)
    person = person_for_user(_user(app, unlinked_user))
    assert person is not None and (person.name, person.hsa_id) == ("Anna Åkesson", ANNA)
    assert _link(unlinked_user).protected_identity_clearance is False
    [row] = _audit("user.link")
    assert (row.actor, row.entity, row.entity_id) == ("admin", "user", unlinked_user)
    assert row.before is None
    assert row.after == {"hsa_id": ANNA, "protected_identity_clearance": False}


def test_clearance_flag_is_saved(app, login, unlinked_user):
    admin = login("Admin")
    admin.post(f"{URL}{unlinked_user}/link",
               data={"hsa_id": ANNA.lower(), "protected_identity_clearance": "1"})
    assert _link(unlinked_user).protected_identity_clearance is True
    admin.post(f"{URL}{unlinked_user}/link", data={"hsa_id": ANNA})
    assert _link(unlinked_user).protected_identity_clearance is False
    changed = _audit("user.link")[-1]
    assert changed.before["protected_identity_clearance"] is True
    assert changed.after["protected_identity_clearance"] is False


def test_malformed_hsa_id_is_refused_and_nothing_changes(app, login, unlinked_user):
    response = login("Admin").post(f"{URL}{unlinked_user}/link", data={"hsa_id": "E0001"},
                                   follow_redirects=True)
    assert response.status_code == 200
    assert "Ett HSA-id ser ut som SE2321000131-E000000000001" in response.get_data(as_text=True)
    assert _link(unlinked_user) is None and not _audit("user.link")


def test_unknown_person_is_refused(app, login, unlinked_user):
    response = login("Admin").post(f"{URL}{unlinked_user}/link",
                                   data={"hsa_id": "SE2321000131-E999999999999"},
                                   follow_redirects=True)
    assert response.status_code == 200
    assert "SE2321000131-E999999999999" in response.get_data(as_text=True)
    assert _link(unlinked_user) is None


def test_person_linked_to_another_user_is_refused(app, login, unlinked_user):
    gustav = "SE2321000131-E000000000007"  # intygsgivare1's person
    response = login("Admin").post(f"{URL}{unlinked_user}/link", data={"hsa_id": gustav},
                                   follow_redirects=True)
    assert response.status_code == 200
    assert "redan kopplat till ett annat inloggningskonto" in response.get_data(as_text=True)
    assert _link(unlinked_user) is None and not _audit("user.link")
    owner = app.appbuilder.sm.find_user(username="intygsgivare1")
    assert person_for_user(owner).hsa_id == gustav


def test_removing_the_link_needs_confirmation_and_is_audited(app, login, unlinked_user):
    admin = login("Admin")
    admin.post(f"{URL}{unlinked_user}/link", data={"hsa_id": ANNA})
    page = admin.post(f"{URL}{unlinked_user}/remove", data={},
                      follow_redirects=True).get_data(as_text=True)
    assert "Kryssa i rutan" in page and _link(unlinked_user) is not None

    page = admin.post(f"{URL}{unlinked_user}/remove", data={"confirm": "1"},
                      follow_redirects=True).get_data(as_text=True)
    assert "Kopplingen är borttagen." in page
    assert person_for_user(_user(app, unlinked_user)) is None
    [row] = _audit("user.unlink")
    assert row.entity_id == unlinked_user and row.before["hsa_id"] == ANNA and row.after is None


def test_unknown_user_is_a_message_not_an_error_page(app, login):
    response = login("Admin").post(f"{URL}99999/link", data={"hsa_id": ANNA},
                                   follow_redirects=True)
    assert response.status_code == 200
    assert "Inget inloggningskonto 99999 hittades." in response.get_data(as_text=True)


@pytest.mark.parametrize("role", ["Servicecenter", "Televäxeln", "Korthandläggare", "Chef",
                                  "Intygsgivare"])
def test_other_roles_are_forbidden(app, login, unlinked_user, role):
    client = login(role)
    assert client.get(URL).status_code == 403
    assert client.post(f"{URL}{unlinked_user}/link", data={"hsa_id": ANNA}).status_code == 403
    assert client.post(f"{URL}{unlinked_user}/remove", data={"confirm": "1"}).status_code == 403
    assert _link(unlinked_user) is None


def test_a_name_given_for_the_hsa_id_is_explained_with_whom_it_matches(app, login,
                                                                       unlinked_user):
    response = login("Admin").post(f"{URL}{unlinked_user}/link",
                                   data={"hsa_id": "Gustav Gran"}, follow_redirects=True)
    assert ("Ange HSA-id, t.ex. SE2321000131-B123; den enda personen med namnet ”Gustav Gran” "
            "är Gustav Gran (SE2321000131-E000000000007).") in response.text
    assert _link(unlinked_user) is None
