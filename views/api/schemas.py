"""Request and answer schemas of the REST API (marshmallow; also the OpenAPI components)."""

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from app import clock
from app.validation import FieldError, card_serial, hsa_id, personal_number
from models import (
    DEVIATION_STATUSES,
    DEVIATION_TYPES,
    ISSUANCE_STATUSES,
    LOA_LEVELS,
    ORDINARY_CARD_STATES,
    REASONS,
)

CHECK_KEYS = ("identity", "reason", "card", "attesters", "card_or_order", "reserve_order")


class _Formatted(fields.String):
    """A string normalised by one of app.validation's format checks."""

    check = None

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return type(self).check(text, field=attr or "value")
        except FieldError as exc:
            raise ValidationError(exc.message) from exc


class Serial(_Formatted):
    check = staticmethod(card_serial)


class HsaId(_Formatted):
    check = staticmethod(hsa_id)


class PersonalNumber(_Formatted):
    """Twelve digits (YYYYMMDDNNNN) after normalising; empty means none."""

    check = staticmethod(personal_number)


class UtcDateTime(fields.DateTime):
    """Stored naive UTC, shown as ISO 8601 with its offset."""

    def _serialize(self, value, attr, obj, **kwargs):
        return clock.isoformat(value)


def Id(**kwargs):  # noqa: N802
    """A database key: a positive 32-bit integer."""
    return fields.Integer(strict=True, validate=validate.Range(min=1, max=MAX_ID), **kwargs)


MAX_ID = 2**31 - 1


class StrictBool(fields.Boolean):
    """Only the JSON booleans true and false (not 0, 1, "true", "yes": 0 == False in Python)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


def Text(**kwargs):  # noqa: N802
    return fields.String(validate=validate.Length(min=1, max=4000), **kwargs)


class Strict(Schema):
    class Meta:
        # Extra fields are ignored in requests and may be added to answers later.
        unknown = EXCLUDE


# ---- requests -------------------------------------------------------------------------------

class CardBatchSchema(Strict):
    serials = fields.List(Serial(), required=True, validate=validate.Length(min=1, max=5000))
    product_code = fields.String(required=True, validate=validate.Length(min=1, max=16))
    loa = fields.String(required=True, validate=validate.OneOf(LOA_LEVELS))
    expires_on = fields.Date(required=True)
    pickup_point_id = Id(required=True)


class CardBatchResultSchema(Strict):
    created = fields.Integer(required=True)


class SecondAttesterSchema(Strict):
    username = fields.String(required=True, validate=validate.Length(min=1, max=256))
    password = fields.String(required=True, validate=validate.Length(min=1, max=256),
                             load_only=True)


class ApplicationSchema(Strict):
    card_serial = Serial(required=True)
    recipient_hsa_id = HsaId(required=True)
    reason = fields.String(required=True, validate=validate.OneOf(REASONS))
    valid_until = fields.Date(allow_none=True, load_default=None)
    assignment = fields.String(allow_none=True, load_default=None,
                               validate=validate.Length(max=4000))
    password = fields.String(
        allow_none=True, load_default=None, load_only=True,
        validate=validate.Length(min=1, max=256),
        metadata={"description": "The caller's own password, given again in this application "
                                 "(attester 1 authenticates in the application itself); not "
                                 "needed where client-certificate login presents the card"})
    other_attesters = fields.List(
        fields.Nested(SecondAttesterSchema), allow_none=True, load_default=None,
        validate=validate.Length(max=10),
        metadata={"description": "The attesters besides the caller, each signing in here; as "
                                 "many as the recipient's organisation type requires minus one"})
    second_attester = fields.Nested(
        SecondAttesterSchema, allow_none=True, load_default=None,
        metadata={"description": "Shorthand for other_attesters with one entry (two attesters)"})
    recipient_present = StrictBool(required=True)
    envelope_unopened = StrictBool(required=True)


class ChecksSchema(Strict):
    identity = StrictBool(load_default=False)
    reason = StrictBool(load_default=False)
    card = StrictBool(load_default=False)
    attesters = StrictBool(load_default=False)
    card_or_order = StrictBool(load_default=False)
    reserve_order = StrictBool(load_default=False)


class ApproveSchema(Strict):
    kobe_reference = fields.String(required=True, validate=validate.Length(min=1, max=64))
    checks = fields.Nested(ChecksSchema, required=True)


class ReasonSchema(Strict):
    reason = Text(required=True)


class ExtendSchema(Strict):
    same_reason = StrictBool(load_default=True)


class ReturnSchema(Strict):
    then = fields.String(allow_none=True, load_default=None,
                         validate=validate.OneOf(("restock", "destroy")),
                         metadata={"description": "What Servicecenter does with the card"})


class MailPrepareSchema(Strict):
    card_serial = Serial(required=True)
    recipient_hsa_id = HsaId(required=True)
    reason = fields.String(required=True, validate=validate.OneOf(REASONS))
    address = Text(required=True)
    justification = Text(required=True)
    valid_until = fields.Date(allow_none=True, load_default=None)
    assignment = fields.String(allow_none=True, load_default=None,
                               validate=validate.Length(max=4000))


class LostSchema(Strict):
    note = Text(required=True, metadata={"description": "How and when the card was lost"})


class DispatchedSchema(Strict):
    registered_mail_number = fields.String(required=True,
                                           validate=validate.Length(min=1, max=64))


class NoteSchema(Strict):
    text = Text(required=True)


class KobeRowSchema(Strict):
    hsa_id = fields.String(required=True)
    ordinary_card = fields.String(required=True, validate=validate.OneOf(ORDINARY_CARD_STATES))
    reserve_card_order = fields.Boolean(required=True)


class KobeImportSchema(Strict):
    rows = fields.List(fields.Dict(), required=True,
                       metadata={"description": "Objects shaped like KobeRow"})


class UpdatedSchema(Strict):
    updated = fields.Integer(required=True)


class RowErrorSchema(Strict):
    row = fields.Integer(metadata={"description": "1-based row number (CSV: data rows)"})
    field = fields.String(allow_none=True)
    message = fields.String()


class KobeErrorsSchema(Strict):
    rows = fields.List(fields.Nested(RowErrorSchema))


class KobeImportErrorSchema(Strict):
    message = fields.String(required=True)
    errors = fields.Nested(KobeErrorsSchema, required=True)


class ReportQuerySchema(Strict):
    format = fields.String(load_default="csv", validate=validate.OneOf(("csv", "xlsx")))
    date_from = fields.Date(data_key="from", allow_none=True, load_default=None)
    date_to = fields.Date(data_key="to", allow_none=True, load_default=None)
    unit_id = fields.Integer(allow_none=True, load_default=None,
                             validate=validate.Range(min=1, max=MAX_ID))
    type = fields.String(allow_none=True, load_default=None,
                         validate=validate.OneOf(DEVIATION_TYPES))
    status = fields.String(allow_none=True, load_default=None,
                           validate=validate.OneOf(DEVIATION_STATUSES))


class CursorSchema(Strict):
    after = fields.Integer(load_default=None, validate=validate.Range(min=1, max=MAX_ID),
                           metadata={"description": "Keyset cursor: the rows after this id"})


class IssuanceQuerySchema(CursorSchema):
    status = fields.String(validate=validate.OneOf(ISSUANCE_STATUSES), load_default=None)
    channel = fields.String(validate=validate.OneOf(("in_person", "registered_mail")),
                            load_default=None)
    card_serial = Serial(load_default=None)
    recipient_hsa_id = HsaId(load_default=None)
    page = fields.Integer(load_default=0, validate=validate.Range(min=0, max=100000))
    page_size = fields.Integer(load_default=25, validate=validate.Range(min=1, max=100))


# ---- answers --------------------------------------------------------------------------------

class CreatedIssuanceSchema(Strict):
    id = fields.Integer(required=True)
    status = fields.String(required=True)
    valid_until = fields.Date(allow_none=True)
    receipt_due = fields.Date(allow_none=True)


class StepResultSchema(Strict):
    id = fields.Integer(required=True)
    status = fields.String(required=True)
    valid_until = fields.Date(allow_none=True)


class PersonRefSchema(Strict):
    hsa_id = fields.String()
    name = fields.String()
    protected_identity = fields.Boolean()


class CardRefSchema(Strict):
    serial = fields.String()
    loa = fields.String()
    product_code = fields.String()
    expires_on = fields.Date()
    status = fields.String()


class AttesterSchema(Strict):
    position = fields.Integer()
    hsa_id = fields.String()
    name = fields.String()
    authenticated_at = UtcDateTime()


class ExtensionSchema(Strict):
    requested_at = UtcDateTime()
    previous_valid_until = fields.Date()
    new_valid_until = fields.Date()
    reason = fields.String()


class HistorySchema(Strict):
    at = UtcDateTime()
    actor = fields.String()
    action = fields.String()
    before = fields.Raw(allow_none=True)
    after = fields.Raw(allow_none=True)


class IssuanceSchema(Strict):
    id = fields.Integer(required=True)
    channel = fields.String()
    status = fields.String(required=True)
    reason = fields.String()
    assignment = fields.String(allow_none=True)
    created_at = UtcDateTime(allow_none=True)
    issued_at = UtcDateTime(allow_none=True)
    valid_until = fields.Date(allow_none=True)
    receipt_due = fields.Date(allow_none=True)
    receipt_received_at = UtcDateTime(allow_none=True)
    approved_at = UtcDateTime(allow_none=True)
    kobe_reference = fields.String(allow_none=True)
    rejection_reason = fields.String(allow_none=True)
    blocked_at = UtcDateTime(allow_none=True)
    block_reason = fields.String(allow_none=True)
    returned_at = UtcDateTime(allow_none=True)
    lost_at = UtcDateTime(allow_none=True)
    lost_note = fields.String(allow_none=True)
    certificate_block_requested_at = UtcDateTime(allow_none=True)
    registered_mail_number = fields.String(allow_none=True)
    id_method = fields.String(allow_none=True)
    card = fields.Nested(CardRefSchema)
    recipient = fields.Nested(PersonRefSchema)
    attesters = fields.List(fields.Nested(AttesterSchema))
    extension = fields.Nested(ExtensionSchema, allow_none=True)


class IssuanceDetailSchema(IssuanceSchema):
    history = fields.List(fields.Nested(HistorySchema))


class ListPageSchema(Strict):
    """What every list answer says about the list beyond its page."""

    count = fields.Integer(required=True, metadata={
        "description": "The total, exact up to 10 000; above that `count_exact` is false and "
                       "`count` is 10 001 (more than 10 000) or an estimate"})
    count_exact = fields.Boolean(required=True)
    next = fields.String(allow_none=True, metadata={
        "description": "The URL of the next page (keyset, `after=`), null on the last page"})


class IssuanceListSchema(ListPageSchema):
    result = fields.List(fields.Nested(IssuanceSchema), required=True)


class NoteResultSchema(Strict):
    id = fields.Integer(required=True)
    notes = fields.Integer(required=True, metadata={"description": "Number of notes now"})


class ExportJobSchema(Strict):
    id = fields.Integer(required=True)
    status = fields.String(required=True,
                           validate=validate.OneOf(("queued", "running", "done", "failed")))
    format = fields.String(required=True, validate=validate.OneOf(("csv", "xlsx")))
    rows_done = fields.Integer(required=True)
    rows_total = fields.Integer(allow_none=True)
    created_at = fields.String(required=True, metadata={"format": "date-time"})
    finished_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    status_url = fields.String(required=True)
    file_url = fields.String(metadata={"description": "Present once the file is done"})


COMPONENTS = (
    # nested ones first, so that every reference uses the registered name
    SecondAttesterSchema, ChecksSchema, PersonRefSchema, CardRefSchema, AttesterSchema,
    ExtensionSchema, HistorySchema, RowErrorSchema, KobeErrorsSchema,
    CardBatchSchema, CardBatchResultSchema, ApplicationSchema, ApproveSchema, ReasonSchema,
    ExtendSchema, ReturnSchema, MailPrepareSchema, LostSchema, DispatchedSchema, NoteSchema,
    KobeRowSchema,
    KobeImportSchema, UpdatedSchema, KobeImportErrorSchema, CreatedIssuanceSchema,
    StepResultSchema, IssuanceSchema, IssuanceDetailSchema, ListPageSchema, IssuanceListSchema,
    NoteResultSchema, ExportJobSchema,
)
