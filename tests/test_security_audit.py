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
    verified = audit.verify()
    assert verified.ok, verified["breaks"]


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


def test_the_users_api_is_off_and_logins_made_on_the_command_line_are_audited(
        app, login, runner, api_headers):
    # FAB's security REST API is switched off (FAB_ADD_SECURITY_API = False): logins are made
    # on the screens and with the command line.
    headers = api_headers("Admin")
    client = app.test_client()
    assert client.get("/api/v1/security/users/", headers=headers).status_code == 404
    assert client.post("/api/v1/security/users/", headers=headers, json={
        "first_name": "Pia", "last_name": "Persson", "username": "pia", "email": "pia@example.se",
        "password": NEW, "roles": [role_id(app, "Chef")], "active": True}).status_code == 404
    assert user(app, "pia") is None

    made = runner.invoke(args=["reservkort", "create-user", "--username", "pia", "--password", NEW,
                               "--role", "Chef", "--email", "pia@example.se",
                               "--first-name", "Pia", "--last-name", "Persson"])
    assert made.exit_code == 0, made.output
    [created] = rows("user.create")[-1:]
    assert created.actor == "system" and created.after["username"] == "pia"
    assert created.after["roles"] == ["Chef"] and "password" not in created.after
    pia = user(app, "pia")
    answer = login("Admin").post(f"/users/edit/{pia.id}", data={
        "first_name": "Pia", "last_name": "Persson", "username": "pia",
        "email": "pia@example.se", "roles": [str(role_id(app, "Chef"))]})  # "active" unticked
    assert answer.status_code == 302, answer.get_data(as_text=True)[:400]
    [update] = rows("user.update")
    assert update.before == {"active": True} and update.after == {"active": False}


def test_role_and_permission_changes_are_audited(app, login, api_headers):
    client = app.test_client()
    assert client.post("/api/v1/security/roles/", headers=api_headers("Admin"),
                       json={"name": "Revisor"}).status_code == 404  # the API is off
    admin = login("Admin")
    created = admin.post("/roles/add", data={"name": "Revisor"})
    assert created.status_code == 302, created.get_data(as_text=True)[:400]
    assert rows("role.create")[-1].after["name"] == "Revisor"
    sm = app.appbuilder.sm
    revisor = sm.find_role("Revisor").id
    permission = sm.find_permission_view_menu("can_list", "AuditLogView")
    answer = admin.post(f"/roles/edit/{revisor}",
                        data={"name": "Revisor", "permissions": [str(permission.id)]})
    assert answer.status_code == 302, answer.get_data(as_text=True)[:400]
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
    deleted = admin.post(f"/roles/delete/{revisor}")
    assert deleted.status_code == 302, deleted.get_data(as_text=True)[:400]
    assert sm.find_role("Revisor") is None
    assert rows("role.delete")[-1].before["name"] == "Revisor"
    verified = audit.verify()
    assert verified.ok, verified["breaks"]


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
def test_a_failed_change_leaves_no_audit_row(app, login, runner):
    admin = login("Admin")
    before = count()
    taken = admin.post("/users/add", data={
        "first_name": "A", "last_name": "B", "username": "chef", "active": "y",
        "email": "ny@example.se", "roles": [str(role_id(app, "Chef"))],
        "password": NEW, "conf_password": NEW})
    assert taken.status_code == 200  # the form again, with the error
    # The database refuses a second login with chef's e-mail; FAB rolls the change back.
    refused = runner.invoke(args=["reservkort", "create-user", "--username", "ny",
                                  "--password", NEW, "--role", "Chef",
                                  "--email", user(app, "chef").email])
    assert refused.exit_code == 1, refused.output
    db.session.rollback()
    assert user(app, "ny") is None
    assert count() == before
