"""FAB's login endpoint (`POST /api/v1/security/login`) with the contract's error answers: a
malformed body is 400 with a readable `message` and the wrong fields in `errors`."""

from flask_appbuilder.security.api import SecurityApi

from views.api.base import ReservkortApiMixin


class LoginApi(ReservkortApiMixin, SecurityApi):
    """FAB's SecurityApi (login, refresh); only the shape of its 400 answers differs."""
