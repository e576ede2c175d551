"""`reservkort create-user`: clearance for protected identity, and a person has at most one
login (a second is refused with a clear message and exit status 1)."""

from sqlalchemy import select

from app.extensions import db
from models import AccountLink, AuditEvent

PASSWORD = "Ett-langt-losen-1"
DAVID = "SE2321000131-E000000000004"  # has no login in the demo data
GUSTAV = "SE2321000131-E000000000007"  # intygsgivare1's person


def _create(runner, username, *extra):
    return runner.invoke(args=["reservkort", "create-user", "--username", username,
                               "--password", PASSWORD, "--role", "Chef", *extra])


def _link(app, username):
    user = app.appbuilder.sm.find_user(username=username)
    if user is None:
        return None
    return db.session.execute(
        select(AccountLink).where(AccountLink.user_id == user.id)).scalar_one_or_none()


def test_create_user_with_protected_identity_clearance(runner, app):
    result = _create(runner, "ddahl", "--hsa-id", DAVID, "--protected-identity-clearance")
    assert result.exit_code == 0, result.output
    assert "ddahl" in result.output
    link = _link(app, "ddahl")
    assert link.person.hsa_id == DAVID and link.protected_identity_clearance is True
    # The login itself is audited from the session (app.security_audit, "user.create"); the
    # person link and its clearance, which create-user adds, on a row of their own.
    event = db.session.execute(select(AuditEvent).where(AuditEvent.action == "user.create_link")
                               .order_by(AuditEvent.id.desc())).scalars().first()
    assert event.after["protected_identity_clearance"] is True
    plain = _create(runner, "utan", "--hsa-id", "SE2321000131-E000000000010")
    assert plain.exit_code == 0, plain.output
    assert _link(app, "utan").protected_identity_clearance is False


def test_a_second_login_for_the_same_person_is_refused(runner, app):
    result = _create(runner, "gustav2", "--hsa-id", GUSTAV)
    assert result.exit_code == 1
    assert "redan kopplat till ett annat inloggningskonto" in result.output
    assert "--hsa-id" in result.output and "Traceback" not in result.output
    assert app.appbuilder.sm.find_user(username="gustav2") is None


def test_clearance_needs_a_person(runner, app):
    result = _create(runner, "ingen", "--protected-identity-clearance")
    assert result.exit_code == 1
    assert "--hsa-id" in result.output
    assert app.appbuilder.sm.find_user(username="ingen") is None
