"""The password policy for database logins."""

import re

from flask_appbuilder.exceptions import PasswordComplexityValidationError

MIN_LENGTH = 12


def problems(password: str) -> list[str]:
    found = []
    if len(password or "") < MIN_LENGTH:
        found.append(f"at least {MIN_LENGTH} characters")
    if not re.search(r"[A-Za-zÅÄÖåäö]", password or ""):
        found.append("a letter")
    if not re.search(r"[0-9]", password or ""):
        found.append("a digit")
    return found


def validate_password(password: str) -> None:
    """FAB's complexity hook: raises with a message that names what is missing."""
    missing = problems(password)
    if missing:
        raise PasswordComplexityValidationError(
            "The password needs " + ", ".join(missing) + "."
        )
