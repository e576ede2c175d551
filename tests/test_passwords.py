"""Every path that sets a password works, checks the policy in Swedish, and the own change asks
for the old password; afterwards the new password logs in and the old one does not."""

import pytest

from app.extensions import db

DEMO = "Reservkort-demo-2026"
NEW = "Nytt-losenord-2027"


def _login_status(app, username, password):
    return app.test_client().post("/login/", data={"username": username, "password": password})


def _logs_in(app, username, password) -> bool:
    response = app.test_client().post("/api/v1/security/login", json={
        "username": username, "password": password, "provider": "db"})
    return response.status_code == 200


def _user(app, username):
    return app.appbuilder.sm.find_user(username=username)


def test_own_password_change_asks_for_the_old_password(app, login):
    client = login("Servicecenter")
    form = client.get("/resetmypassword/form")
    assert form.status_code == 200
    assert "old_password" in form.get_data(as_text=True)
    wrong = client.post("/resetmypassword/form", data={
        "old_password": "inte-det-gamla-1", "password": NEW, "conf_password": NEW})
    assert wrong.status_code == 200
    assert "Det nuvarande lösenordet är fel." in wrong.get_data(as_text=True)
    assert _logs_in(app, "servicecenter", DEMO) and not _logs_in(app, "servicecenter", NEW)


def test_own_password_change_works_and_the_new_password_logs_in(app, login):
    client = login("Servicecenter")
    answer = client.post("/resetmypassword/form", data={
        "old_password": DEMO, "password": NEW, "conf_password": NEW})
    assert answer.status_code in (302, 303), answer.get_data(as_text=True)[:500]
    db.session.expire_all()
    assert _logs_in(app, "servicecenter", NEW)
    assert not _logs_in(app, "servicecenter", DEMO)


@pytest.mark.parametrize("weak, missing", [("kort-1", "minst 12 tecken"),
                                           ("bara-bokstaver-har", "en siffra")])
def test_a_weak_new_password_is_refused_in_swedish(app, login, weak, missing):
    client = login("Chef")
    answer = client.post("/resetmypassword/form", data={
        "old_password": DEMO, "password": weak, "conf_password": weak})
    assert answer.status_code == 200
    assert "Lösenordet behöver" in answer.get_data(as_text=True)
    assert missing in answer.get_data(as_text=True)
    assert _logs_in(app, "chef", DEMO)


def test_admin_resets_another_logins_password(app, login):
    target = _user(app, "televaxeln")
    client = login("Admin")
    assert client.get(f"/resetpassword/form?pk={target.id}").status_code == 200
    answer = client.post(f"/resetpassword/form?pk={target.id}",
                         data={"password": NEW, "conf_password": NEW})
    assert answer.status_code in (302, 303)
    db.session.expire_all()
    assert _logs_in(app, "televaxeln", NEW) and not _logs_in(app, "televaxeln", DEMO)


def test_admin_sets_a_password_through_the_api(app, api_headers):
    target = _user(app, "korthandlaggare")
    headers = api_headers("Admin")
    weak = app.test_client().put(f"/api/v1/security/users/{target.id}", headers=headers,
                                 json={"password": "kort"})
    assert weak.status_code == 400
    assert "Lösenordet behöver" in str(weak.get_json())
    answer = app.test_client().put(f"/api/v1/security/users/{target.id}", headers=headers,
                                   json={"password": NEW})
    assert answer.status_code == 200, answer.get_json()
    db.session.expire_all()
    assert _logs_in(app, "korthandlaggare", NEW) and not _logs_in(app, "korthandlaggare", DEMO)


def test_the_command_line_sets_a_password_with_the_policy(app, runner):
    weak = runner.invoke(args=["reservkort", "set-password", "--username", "chef",
                               "--password", "kort"])
    assert weak.exit_code == 1 and "Lösenordet behöver" in weak.output
    done = runner.invoke(args=["reservkort", "set-password", "--username", "chef",
                               "--password", NEW])
    assert done.exit_code == 0, done.output
    db.session.expire_all()
    assert _logs_in(app, "chef", NEW) and not _logs_in(app, "chef", DEMO)
