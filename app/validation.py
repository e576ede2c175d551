"""Field formats: card serials, HSA-ids and Swedish personal identity numbers.

Each check returns the normalised value or raises FieldError naming the field and the rule.
"""

import re

from flask_babel import lazy_gettext as _l
from stdnum.exceptions import ValidationError as StdnumError
from stdnum.se import personnummer

SERIAL_RE = re.compile(r"^[0-9]{6,20}$")
HSA_ID_RE = re.compile(r"^SE[0-9]{10}-[A-Z0-9]{1,31}$")


class FieldError(ValueError):
    """A malformed value: `field` names the input, `message` the rule it breaks."""

    def __init__(self, field: str, message):
        self.field = field
        self._message = message
        super().__init__(f"{field}: {message}")

    @property
    def message(self) -> str:
        return str(self._message)

    def as_dict(self) -> dict:
        return {"message": self.message, "errors": {self.field: [self.message]}}


def card_serial(value, field: str = "serial") -> str:
    serial = re.sub(r"\s+", "", str(value or ""))
    if not SERIAL_RE.match(serial):
        raise FieldError(field, _l("A card serial is 6 to 20 digits."))
    return serial


def hsa_id(value, field: str = "hsa_id") -> str:
    normalised = str(value or "").strip().upper()
    if not HSA_ID_RE.match(normalised):
        raise FieldError(
            field, _l("An HSA-id looks like SE2321000131-E000000000001 (SE, 10 digits, a dash, "
                      "then letters or digits).")
        )
    return normalised


def personal_number(value, field: str = "personal_number") -> str | None:
    """Twelve digits (YYYYMMDDNNNN), or None for an empty value."""
    raw = str(value or "").strip()
    if not raw:
        return None
    try:
        number = personnummer.validate(raw)
        century = str(personnummer.get_birth_date(number).year)[:2]
    except StdnumError as exc:
        raise FieldError(
            field, _l("Not a valid Swedish personal identity number (YYYYMMDD-NNNN with a "
                      "correct check digit).")
        ) from exc
    return century + re.sub(r"\D", "", number)[-10:]
