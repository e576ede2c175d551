"""The security manager: FAB's database login, plus the link from a login to its person, and
the REST API's answer when the access token is missing or wrong."""

from flask import jsonify
from flask_appbuilder.security.sqla.apis import UserApi
from flask_appbuilder.security.sqla.manager import SecurityManager
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.access import AccessInterface, MaskingSchemaConverter
from app.extensions import db
from models import AccountLink, Person


class MaskedUserApi(UserApi):
    """FAB's user API read through the access policy (a protected person's login)."""

    model2schemaconverter = MaskingSchemaConverter


class ReservkortSecurityManager(SecurityManager):
    user_api = MaskedUserApi

    def __init__(self, appbuilder):
        super().__init__(appbuilder)
        # FAB's user screens and API read logins through the access policy too.
        self.userdbmodelview.datamodel = AccessInterface(self.user_model)
        self.user_api.datamodel = AccessInterface(self.user_model)

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
