"""The password policy for database logins, and the one way a password is changed.

Every path that sets a password (the user's own change, Admin's reset of another login, FAB's
user API, the command line) checks it against this policy; FAB calls `validate_password` through
`FAB_PASSWORD_COMPLEXITY_VALIDATOR`. A changed password ends the login's other sessions and
tokens (app.sessions) and writes an audit row (app.security_audit), both in the same commit.
"""

import re

from flask_appbuilder.exceptions import PasswordComplexityValidationError
from flask_babel import lazy_gettext as _l

MIN_LENGTH = 12


def problems(password: str) -> list[str]:
    """What the password lacks, as readable phrases (empty when it meets the policy)."""
    found = []
    if len(password or "") < MIN_LENGTH:
        found.append(str(_l("at least %(count)s characters", count=MIN_LENGTH)))
    if not re.search(r"[A-Za-zÅÄÖåäöÉéÜü]", password or ""):
        found.append(str(_l("a letter")))
    if not re.search(r"[0-9]", password or ""):
        found.append(str(_l("a digit")))
    return found


def message(missing: list[str]) -> str:
    return str(_l("The password needs %(missing)s.", missing=", ".join(missing)))


def validate_password(password: str) -> None:
    """FAB's complexity hook: raises with a message that names what is missing."""
    missing = problems(password)
    if missing:
        raise PasswordComplexityValidationError(message(missing))


class PasswordPolicyError(ValueError):
    """The new password does not meet the policy (the message says what is missing)."""


def set_password(user, password: str) -> None:
    """Give `user` a new password after checking the policy, and commit."""
    from flask import current_app

    missing = problems(password)
    if missing:
        raise PasswordPolicyError(message(missing))
    current_app.appbuilder.sm.reset_password(user.id, password)
