"""FAB's own security screens, as the security manager installs them: changing one's own
password asks for the old one; both password forms check the policy of app.passwords."""

from flask import flash, g, request
from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget
from flask_appbuilder.forms import DynamicForm
from flask_appbuilder.security.views import ResetMyPasswordView as FabResetMyPasswordView
from flask_appbuilder.security.views import ResetPasswordView as FabResetPasswordView
from flask_appbuilder.security.views import UserDBModelView as FabUserDBModelView
from flask_babel import lazy_gettext as _l
from wtforms import PasswordField
from wtforms.validators import DataRequired, EqualTo, ValidationError

from app import access, passwords
from app.errors import RULE_MESSAGES


def _policy(form, field):
    missing = passwords.problems(field.data)
    if missing:
        raise ValidationError(passwords.message(missing))


# Made first, so that the own-password form shows it above the new password.
_CURRENT_PASSWORD = PasswordField(_l("Current password"), validators=[DataRequired()],
                                  widget=BS3PasswordFieldWidget())


class SetPasswordForm(DynamicForm):
    password = PasswordField(
        _l("New password"),
        description=_l("At least %(count)s characters, with at least one letter and one digit.",
                       count=passwords.MIN_LENGTH),
        validators=[DataRequired(), _policy], widget=BS3PasswordFieldWidget())
    conf_password = PasswordField(
        _l("Confirm the new password"),
        validators=[EqualTo("password", message=_l("The two new passwords differ."))],
        widget=BS3PasswordFieldWidget())


class ChangeMyPasswordForm(SetPasswordForm):
    old_password = _CURRENT_PASSWORD

    def validate_old_password(self, field):
        from flask import current_app

        # Through the sign-in check, so that guessing the old password is limited like a login.
        user = current_app.appbuilder.sm.auth_user_db(g.user.username, field.data)
        if user is None or user.id != g.user.id:
            raise ValidationError(_l("The current password is wrong."))


class ResetMyPasswordView(FabResetMyPasswordView):
    """The user's own password change (same name and permissions as FAB's view)."""

    form = ChangeMyPasswordForm
    form_title = _l("Change your password")
    message = _l("Your password is changed.")

    def form_post(self, form):
        passwords.set_password(g.user, form.password.data)
        flash(str(self.message), "info")


class ResetPasswordView(FabResetPasswordView):
    """Admin sets another login's password (same name and permissions as FAB's view)."""

    form = SetPasswordForm
    form_title = _l("Set a new password")
    message = _l("The password is changed.")

    def form_post(self, form):
        from flask import abort, current_app

        user = current_app.appbuilder.sm.get_user_by_id(request.args.get("pk", type=int))
        if user is None:
            abort(404)
        passwords.set_password(user, form.password.data)
        flash(str(self.message), "info")


class UserDBModelView(FabUserDBModelView):
    """FAB's user screens. The edit form shows and saves a login's stored values, so a login
    without clearance may not open it on a protected person's login (it would read their
    names); a cleared one edits the real, stored username (nothing masked is saved back)."""

    def _edit(self, pk):
        if access.login_hidden(_login_id(pk)):
            flash(str(RULE_MESSAGES["protected_identity_clearance_required"]), "danger")
            return None
        return super()._edit(pk)


def _login_id(pk):
    try:
        return int(pk)
    except (TypeError, ValueError):
        return None
