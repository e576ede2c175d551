"""FAB's own user, role, password and clearance changes write audit rows, in the same
transaction, whichever path makes them; logging in writes none."""

import pytest
from sqlalchemy import func, select

from app import accounts, audit
from app.extensions import db
from models import AuditEvent

NEW = "Nytt-losenord-2027"


def rows(action):
    return db.session.execute(
        select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
    ).scalars().all()


def count():
    return db.session.execute(select(func.count()).select_from(AuditEvent)).scalar()


def role_id(app, name):
    return app.appbuilder.sm.find_role(name).id


def user(app, username):
    return app.appbuilder.sm.find_user(username=username)


def test_admin_creates_edits_and_removes_a_login_on_fabs_screens(app, login):
    admin = login("Admin")
    answer = admin.post("/users/add", data={
        "first_name": "Olle", "last_name": "Olsson", "username": "olle", "active": "y",
        "email": "olle@example.se", "roles": [str(role_id(app, "Chef"))],
        "password": NEW, "conf_password": NEW})
    assert answer.status_code == 302, answer.get_data(as_text=True)[:400]
    [created] = rows("user.create")[-1:]
    assert created.actor == "admin" and created.after["username"] == "olle"
    assert created.after["roles"] == ["Chef"] and "password" not in created.after
    olle = user(app, "olle")

    answer = admin.post(f"/users/edit/{olle.id}", data={
        "first_name": "Olle", "last_name": "Olsson", "username": "olle", "active": "y",
        "email": "olle.olsson@example.se",
        "roles": [str(role_id(app, "Chef")), str(role_id(app, "Servicecenter"))]})
    assert answer.status_code == 302, answer.get_data(as_text=True)[:400]
    updates = rows("user.update")
    assert len(updates) == 1, [(r.before, r.after) for r in updates]
    [changed] = updates
    assert changed.entity_id == olle.id
    assert changed.before["email"] == "olle@example.se"
    assert changed.after["email"] == "olle.olsson@example.se"
    assert changed.before["roles"] == ["Chef"]
    assert changed.after["roles"] == ["Chef", "Servicecenter"]

    assert admin.post(f"/users/delete/{olle.id}").status_code == 302
    [removed] = rows("user.delete")
    assert removed.entity_id == olle.id and removed.before["username"] == "olle"
    assert audit.verify()[0]


def test_password_changes_are_audited_without_the_hash(app, login, runner):
    target = user(app, "televaxeln")
    admin = login("Admin")
    admin.post(f"/resetpassword/form?pk={target.id}",
               data={"password": NEW, "conf_password": NEW})
    own = login("chef")
    own.post("/resetmypassword/form", data={"old_password": "Reservkort-demo-2026",
                                            "password": NEW, "conf_password": NEW})
    assert runner.invoke(args=["reservkort", "set-password", "--username", "servicecenter",
                               "--password", NEW]).exit_code == 0
    found = [(row.actor, row.entity_id, row.after) for row in rows("user.password")]
    assert found == [
        ("admin", target.id, {"password": "changed"}),
        ("chef", user(app, "chef").id, {"password": "changed"}),
        ("system", user(app, "servicecenter").id, {"password": "changed"}),
    ]
    assert not [row for row in rows("user.update") if "password" in (row.after or {})]


def test_logins_through_the_users_api_are_audited(app, api_headers):
    headers = api_headers("Admin")
    created = app.test_client().post("/api/v1/security/users/", headers=headers, json={
        "first_name": "Pia", "last_name": "Persson", "username": "pia", "email": "pia@example.se",
        "password": NEW, "roles": [role_id(app, "Chef")], "active": True})
    assert created.status_code == 201, created.get_json()
    pia = user(app, "pia")
    assert rows("user.create")[-1].after["username"] == "pia"
    changed = app.test_client().put(f"/api/v1/security/users/{pia.id}", headers=headers,
                                    json={"active": False})
    assert changed.status_code == 200, changed.get_json()
    [update] = rows("user.update")
    assert update.before == {"active": True} and update.after == {"active": False}


def test_role_and_permission_changes_are_audited(app, login, api_headers):
    headers = api_headers("Admin")
    client = app.test_client()
    created = client.post("/api/v1/security/roles/", headers=headers, json={"name": "Revisor"})
    assert created.status_code == 201, created.get_json()
    revisor = created.get_json()["id"]
    assert rows("role.create")[-1].after["name"] == "Revisor"
    sm = app.appbuilder.sm
    permission = sm.find_permission_view_menu("can_list", "AuditLogView")
    answer = client.post(f"/api/v1/security/roles/{revisor}/permissions", headers=headers,
                         json={"permission_view_menu_ids": [permission.id]})
    assert answer.status_code == 200, answer.get_json()
    [update] = rows("role.update")
    assert update.before["permissions"] == []
    assert update.after["permissions"] == [str(permission)]
    role = sm.find_role("Revisor")
    role.user.append(user(app, "chef"))
    db.session.commit()
    last = rows("role.update")[-1]
    assert (last.before, last.after) == ({"user": []}, {"user": ["chef"]})
    role.user.remove(user(app, "chef"))
    db.session.commit()
    deleted = client.delete(f"/api/v1/security/roles/{revisor}", headers=headers)
    assert deleted.status_code == 200, deleted.get_json()
    assert rows("role.delete")[-1].before["name"] == "Revisor"
    assert audit.verify()[0]


def test_a_clearance_change_is_audited(app, as_user):
    chef = user(app, "chef")
    with as_user("admin"):
        accounts.set_link(chef.id, "SE2321000131-E000000000011", protected_identity_clearance=True)
    [row] = rows("user.link")[-1:]
    assert row.actor == "admin"
    assert row.before["protected_identity_clearance"] is False
    assert row.after["protected_identity_clearance"] is True


def test_logging_in_writes_no_audit_row(app, login, api_headers):
    before = count()
    login("Servicecenter")
    api_headers("Chef")
    assert count() == before


@pytest.mark.both_databases
def test_a_failed_change_leaves_no_audit_row(app, api_headers):
    headers = api_headers("Admin")
    before = count()
    taken = app.test_client().post("/api/v1/security/users/", headers=headers, json={
        "first_name": "A", "last_name": "B", "username": "chef", "email": "ny@example.se",
        "password": NEW, "roles": [role_id(app, "Chef")]})
    assert taken.status_code in (400, 422)
    db.session.rollback()
    assert count() == before
