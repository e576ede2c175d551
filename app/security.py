"""The security manager: FAB's database login, plus the link from a login to its person, and
the REST API's answer when the access token is missing or wrong."""

from flask import g, jsonify
from flask_appbuilder.api import safe
from flask_appbuilder.security.api import SecurityApi as FabSecurityApi
from flask_appbuilder.security.sqla.manager import SecurityManager
from flask_appbuilder.views import expose
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app import signin_limits
from app.extensions import db
from app.security_views import ResetMyPasswordView, ResetPasswordView
from models import AccountLink, Person
from views.api.login import LoginApi


class SecurityApi(LoginApi):
    """FAB's API login, answering 429 when the sign-in limits refuse (app.signin_limits)."""

    @expose("/login", methods=["POST"])
    @safe
    def login(self):
        try:
            return FabSecurityApi.login.__wrapped__(self)
        except signin_limits.TooManyAttempts as exc:
            return signin_limits.too_many_attempts_response(exc)


class ReservkortSecurityManager(SecurityManager):
    resetmypasswordview = ResetMyPasswordView
    resetpasswordview = ResetPasswordView
    security_api = SecurityApi
    userstatschartview = None  # FAB's login-count chart: not needed, and it loads Google Charts

    def auth_user_db(self, username, password):
        """Every password check (login page, API login, attesters) counts failures and is
        refused while the account is locked or the client has failed too often."""
        parent = super()
        return signin_limits.attempt(username, lambda: parent.auth_user_db(username, password))

    def on_user_logout(self, user) -> None:
        """Logout ends the login's sessions and tokens for good, copies included."""
        from app import sessions

        sessions.end_all_sessions(user.id)

    def load_user_jwt(self, _jwt_header, jwt_data):
        """A token made before the last logout or password change is no longer valid."""
        from app import sessions

        user = self.load_user(jwt_data["sub"])
        if user is None or not user.is_active or not sessions.token_valid(user, jwt_data):
            return None
        g.user = user  # as FAB does: the API's permission checks read it
        return user

    def create_jwt_manager(self, app):
        jwt_manager = super().create_jwt_manager(app)
        answer_401_with_message(jwt_manager)
        return jwt_manager

    def person_for_user(self, user) -> Person | None:
        if user is None or not getattr(user, "id", None):
            return None
        return db.session.execute(
            select(Person).join(AccountLink, AccountLink.person_id == Person.id)
            .where(AccountLink.user_id == user.id)
        ).scalar_one_or_none()


def person_for_user(user) -> Person | None:
    """The person a login account belongs to (attesters and managers need one)."""
    from flask import current_app

    return current_app.appbuilder.sm.person_for_user(user)


def user_roles(user) -> set[str]:
    return {role.name for role in getattr(user, "roles", [])}


def authenticate(username: str, password: str):
    """Check credentials with the same backend as the login page; the user or None."""
    from flask import current_app

    if not username or not password:
        return None
    return current_app.appbuilder.sm.auth_user_db(username, password)


def _unauthorized(message):
    return jsonify({"message": str(message)}), 401


def answer_401_with_message(jwt_manager) -> None:
    """Without a valid access token the API answers 401 {"message": ...} like its other errors
    (flask_jwt_extended's own answer is {"msg": ...}, and 422 for a malformed token)."""
    missing = _l("Not logged in: send an access token (Authorization: Bearer <token>).")
    invalid = _l("The access token is not valid; log in again.")
    expired = _l("The access token has expired; log in again.")
    jwt_manager.unauthorized_loader(lambda _reason: _unauthorized(missing))
    jwt_manager.invalid_token_loader(lambda _reason: _unauthorized(invalid))
    jwt_manager.expired_token_loader(lambda _header, _data: _unauthorized(expired))
    jwt_manager.revoked_token_loader(lambda _header, _data: _unauthorized(invalid))
    jwt_manager.user_lookup_error_loader(lambda _header, _data: _unauthorized(invalid))
