"""The security manager: FAB's database login, plus the link from a login to its person, and
the REST API's answer when the access token is missing or wrong."""

from datetime import datetime

from flask import g, has_request_context, jsonify, request
from flask_appbuilder.api import safe
from flask_appbuilder.security.api import SecurityApi as FabSecurityApi
from flask_appbuilder.security.sqla.apis import UserApi
from flask_appbuilder.security.sqla.manager import SecurityManager
from flask_appbuilder.views import expose
from flask_babel import lazy_gettext as _l
from sqlalchemy import event, select
from sqlalchemy.orm import joinedload

from app import api_contract, signin_limits
from app.access import (
    AccessInterface,
    MaskingSchemaConverter,
    clearance_of,
    protected_token,
    remember_clearance,
    remember_protected_token,
)
from app.api_contract import ContractAnswersMixin
from app.extensions import db
from app.security_views import ResetMyPasswordView, ResetPasswordView, UserDBModelView
from models import AccountLink, Person

# Where the request's user, loaded with its session generation, is kept for the request.
REQUEST_USER = "_rk_request_user"


class SecurityApi(ContractAnswersMixin, FabSecurityApi):
    """FAB's API login (and refresh) with the contract's answers: a malformed body is 400 with
    a readable `message` and the wrong fields in `errors`, and 429 when the sign-in limits
    refuse (app.signin_limits)."""

    @expose("/login", methods=["POST"])
    @safe
    def login(self):
        try:
            return FabSecurityApi.login.__wrapped__(self)
        except signin_limits.TooManyAttempts as exc:
            return api_contract.too_many_attempts_response(exc)

_KNOWN_LOGINS = "rk_known_logins"
# Where the public role's (permission, view) names are kept for the request.
_PUBLIC_PERMISSIONS = "_rk_public_permissions"
_PERSON_OF_LOGIN = "rk_person_of_login"


class MaskedUserApi(UserApi):
    """FAB's user API read through the access policy (a protected person's login)."""

    model2schemaconverter = MaskingSchemaConverter


class ReservkortSecurityManager(SecurityManager):
    resetmypasswordview = ResetMyPasswordView
    resetpasswordview = ResetPasswordView
    userdbmodelview = UserDBModelView
    security_api = SecurityApi
    userstatschartview = None  # FAB's login-count chart: not needed, and it loads Google Charts
    user_api = MaskedUserApi

    def __init__(self, appbuilder):
        super().__init__(appbuilder)
        # FAB's user screens and API read logins through the access policy too.
        self.userdbmodelview.datamodel = AccessInterface(self.user_model)
        self.user_api.datamodel = AccessInterface(self.user_model)

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

        user, current = self.user_and_generation(int(jwt_data["sub"]))
        if user is None or not user.is_active or not sessions.token_valid(
                user, jwt_data, current=current):
            return None
        g.user = user  # as FAB does: the API's permission checks read it
        return user

    def create_jwt_manager(self, app):
        jwt_manager = super().create_jwt_manager(app)
        answer_401_with_message(jwt_manager)
        return jwt_manager

    def user_and_generation(self, pk):
        """The request's user (as `get_user_by_id` loads it), the login's session
        generation, its clearance for protected identity and the protected generation's token
        (app.access), in one statement. The user is kept for the request: the session check
        (app.sessions) reads it first, and Flask-Login's loader then finds it there."""
        from models import SessionGeneration

        generation = (select(SessionGeneration.generation)
                      .where(SessionGeneration.user_id == self.user_model.id).scalar_subquery())
        row = db.session.execute(
            select(self.user_model, generation, clearance_of(self.user_model.id),
                   protected_token())
            .where(self.user_model.id == pk)
            .options(joinedload(self.user_model.roles), joinedload(self.user_model.groups))
        ).unique().one_or_none()
        if row is None:
            return None, 0
        if has_request_context():
            request.__dict__[REQUEST_USER] = row[0]
            remember_clearance(row[0].id, row[2])
            remember_protected_token(row[3])
        return row[0], row[1] or 0

    def get_user_by_id(self, pk):
        """The user of a request (session or JWT) with its roles and groups in one statement,
        instead of one for the user and one for each relation; none when the request's
        session check has already loaded it."""
        known = request.__dict__.get(REQUEST_USER) if has_request_context() else None
        if known is not None and known.id == int(pk):
            return known
        return db.session.execute(
            select(self.user_model).where(self.user_model.id == pk)
            .options(joinedload(self.user_model.roles), joinedload(self.user_model.groups))
        ).unique().scalar_one_or_none()

    def exist_permission_on_roles(self, view_name, permission_name, role_ids) -> bool:
        """Whether the roles hold the permission on the view. A page asks this for every menu
        entry and button (Admin: 40 times on the start page); the roles' permissions are read
        once per request, in one statement, and each question is answered from that set."""
        if not has_request_context():
            return super().exist_permission_on_roles(view_name, permission_name, role_ids)
        return (permission_name, view_name) in self.role_permissions(role_ids)

    def role_permissions(self, role_ids) -> frozenset:
        """(permission, view) pairs the stored roles hold, read once per request."""
        cache = request.__dict__.setdefault("_rk_role_permissions", {})
        key = tuple(sorted(role_ids))
        if key not in cache:
            links = self.role_model.permissions.property.secondary
            cache[key] = self._permission_names(links.c.role_id.in_(key))
        return cache[key]

    def _permission_names(self, condition) -> frozenset:
        """(permission, view) names of the permission-views whose role link meets
        `condition`, in one statement of names (no permission-view rows loaded)."""
        links = self.role_model.permissions.property.secondary
        return frozenset(db.session.execute(
            select(self.permission_model.name, self.viewmenu_model.name)
            .select_from(self.permissionview_model)
            .join(links, links.c.permission_view_id == self.permissionview_model.id)
            .join(self.permission_model,
                  self.permission_model.id == self.permissionview_model.permission_id)
            .join(self.viewmenu_model,
                  self.viewmenu_model.id == self.permissionview_model.view_menu_id)
            .where(condition)
        ).all())

    def access_key(self):
        """What decides which menu entries and buttons this request's login sees: the names
        of its built-in roles (FAB_ROLES, fixed for the process) and the permissions of its
        stored roles; None for a request without an active login. Two requests with the same
        key see the same entries."""
        user = g.get("user")
        if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
            return None
        roles = self.get_user_roles(user)
        builtin = tuple(sorted(role.name for role in roles if role.name in self.builtin_roles))
        stored = [role.id for role in roles if role.name not in self.builtin_roles]
        return builtin, self.role_permissions(stored) if stored else frozenset()

    def is_item_public(self, permission_name, view_name) -> bool:
        """Whether the public role holds the permission on the view. FAB asks before every
        API call and loaded each of the role's permission-views with its relations to answer;
        here the role's (permission, view) names, once per request."""
        cache = request.__dict__ if has_request_context() else {}
        if _PUBLIC_PERMISSIONS not in cache:
            links = self.role_model.permissions.property.secondary
            public = select(self.role_model.id).where(
                self.role_model.name == self.auth_role_public).scalar_subquery()
            cache[_PUBLIC_PERMISSIONS] = self._permission_names(links.c.role_id == public)
        return (permission_name, view_name) in cache[_PUBLIC_PERMISSIONS]

    def get_public_permissions(self):
        """The public role's permissions in one statement (FAB asks on every API call)."""
        role = self.role_model
        return db.session.execute(
            select(self.permissionview_model)
            .join(role.permissions.property.secondary)
            .join(role, role.id == role.permissions.property.secondary.c.role_id)
            .where(role.name == self.auth_role_public)
        ).unique().scalars().all()

    def person_for_user(self, user) -> Person | None:
        if user is None or not getattr(user, "id", None):
            return None
        # Asked more than once in one step (the caller as attester 1, then as the one who
        # applies): the person found earlier in this transaction (held here: the session's
        # identity map alone would let it go), without a statement.
        known = db.session.info.get(_PERSON_OF_LOGIN, {}).get(user.id)
        person = known if known is not None and known in db.session else None
        if person is None:
            person = db.session.execute(
                select(Person).join(AccountLink, AccountLink.person_id == Person.id)
                .where(AccountLink.user_id == user.id)
            ).scalar_one_or_none()
        if person is not None:
            remember_person_of_login(user.id, person)
        return person


def remember_person_of_login(user_id, person) -> None:
    """Remembered for this transaction: whose login a person is (the attester rows), and the
    person of a login (`person_for_user` then takes it from the session, no statement)."""
    db.session.info.setdefault(_KNOWN_LOGINS, {})[person.id] = user_id
    db.session.info.setdefault(_PERSON_OF_LOGIN, {})[user_id] = person


@event.listens_for(db.session, "after_commit")
@event.listens_for(db.session, "after_rollback")
def _forget_known_logins(session):
    session.info.pop(_KNOWN_LOGINS, None)
    session.info.pop(_PERSON_OF_LOGIN, None)


def known_login(person_id):
    """The login id of a person already looked up through `person_for_user` in this
    transaction, or None when it is not known yet."""
    return db.session.info.get(_KNOWN_LOGINS, {}).get(person_id)


def person_for_user(user) -> Person | None:
    """The person a login account belongs to (attesters and managers need one)."""
    from flask import current_app

    return current_app.appbuilder.sm.person_for_user(user)


def user_roles(user) -> set[str]:
    return {role.name for role in getattr(user, "roles", [])}


def authenticate(username: str, password: str):
    """Check credentials against the same password hashes as the login page; the user or None.

    Unlike FAB's `auth_user_db`, a successful check writes its login statistics into the
    caller's transaction (committed with the step it is part of, e.g. the application) instead
    of a commit of its own in the middle of the request. A failed check is counted at once, as
    FAB does, since no step follows it."""
    from flask_appbuilder.security.utils import is_null_password

    if not username or not password or is_null_password(password):
        return None
    if not signin_limits.enabled() or not signin_limits.key(username):
        return _verified_user(username, password)
    # The login and the sign-in limits' state in one statement; the limits are applied before
    # the password is looked at, as signin_limits.attempt does.
    user, state = _user_and_limits(username)
    failures = signin_limits.check(username, state=state)
    user = _verified_user(username, password, user)
    if user is None:
        signin_limits.record_failure(username)
    else:
        signin_limits.record_success(username, commit=False, failures=failures)
    return user


def _user_and_limits(username):
    """The login named `username` (None if there is none, or more than one) and the values of
    signin_limits.state_columns, in one statement; with the login its person (an attester is
    one), remembered for `person_for_user`."""
    from flask import current_app
    from sqlalchemy import func, literal

    from app import clock

    sm = current_app.appbuilder.sm
    user_model = sm.user_model
    match = (func.lower(user_model.username) == func.lower(username) if sm.auth_username_ci
             else user_model.username == username)
    anchor = select(literal(1).label("one")).subquery()
    rows = db.session.execute(
        select(user_model, Person, *signin_limits.state_columns(username, clock.now()))
        .select_from(anchor).outerjoin(user_model, match)
        .outerjoin(AccountLink, AccountLink.user_id == user_model.id)
        .outerjoin(Person, Person.id == AccountLink.person_id)
    ).all()
    user = rows[0][0] if len(rows) == 1 else None
    if user is not None and rows[0][1] is not None:
        remember_person_of_login(user.id, rows[0][1])
    return user, tuple(rows[0][2:])


_FIND = object()


def _verified_user(username, password, user=_FIND):
    from flask import current_app
    from werkzeug.security import check_password_hash

    sm = current_app.appbuilder.sm
    if user is _FIND:
        user = sm.find_user(username=username)
    if user is None or not user.is_active:
        # The same work either way, so the time does not tell whether the login exists.
        check_password_hash(current_app.config["AUTH_DB_FAKE_PASSWORD_HASH_CHECK"], "password")
        return None
    if not check_password_hash(user.password, password):
        sm.update_user_auth_stat(user, False)
        return None
    user.login_count = (user.login_count or 0) + 1
    user.fail_login_count = 0
    user.last_login = datetime.now()
    return user


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
