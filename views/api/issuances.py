"""Issuances through the API: the in-person application, Televäxeln's approval, Servicecenter's
steps, the receipt PDF, and the registered-mail flow. Each endpoint is one workflow call."""

from flask import current_app, request
from flask_appbuilder.api import expose, protect, safe
from flask_appbuilder.security.decorators import permission_name
from flask_babel import lazy_gettext as _l
from marshmallow import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.access import audit_value, current_user_cleared, person_view, shown_column
from app.errors import NotFound
from app.extensions import db
from models import AuditEvent, Issuance, IssuanceAttester, Person, ReserveCard
from views.api import schemas as s
from views.api.base import (
    StepApi,
    api_step,
    cursor_anchor,
    json_body,
    next_page_url,
    workflow,
)
from views.api.steps import step
from views.listing import Keyset, bounded_count

NEWEST_FIRST = Keyset([Issuance.id], descending=True)


def _current_user():
    return current_app.appbuilder.sm.current_user


def _load(issuance_id: int) -> Issuance:
    issuance = db.session.execute(
        select(Issuance).where(Issuance.id == issuance_id)
    ).unique().scalar_one_or_none()
    if issuance is None:
        raise NotFound("issuance", issuance_id)
    return issuance


def issuance_view(issuance: Issuance, cleared: bool) -> dict:
    receipt = issuance.receipt
    return {
        # Free text (a reason, an assignment) as the reader may see it.
        **{key: shown_column(issuance, key, getattr(issuance, key), cleared) for key in (
            "id", "channel", "status", "reason", "assignment", "created_at", "issued_at",
            "valid_until", "receipt_due", "approved_at", "kobe_reference", "rejection_reason",
            "blocked_at", "block_reason", "returned_at", "lost_at", "lost_note",
            "certificate_block_requested_at", "registered_mail_number",
            "id_method")},
        "receipt_received_at": receipt.received_at if receipt else None,
        "card": issuance.card,
        "recipient": person_view(issuance.recipient, cleared),
        "attesters": [
            {"position": a.position, "authenticated_at": a.authenticated_at,
             **person_view(a.person, cleared)}
            for a in issuance.attesters
        ],
        "extension": issuance.extension,
    }


def history(issuance_id: int, cleared: bool) -> list[dict]:
    """The issuance's audit rows as the reader may see them (who, and what they changed)."""
    events = db.session.execute(
        select(AuditEvent).where(AuditEvent.entity == "issuance",
                                 AuditEvent.entity_id == issuance_id)
        .order_by(AuditEvent.id)
    ).scalars().all()
    return [{"at": event.at, "action": event.action,
             "actor": shown_column(event, "actor", event.actor, cleared),
             "before": audit_value(event, event.before, cleared),
             "after": audit_value(event, event.after, cleared)} for event in events]


def step_answer(issuance: Issuance, status=200):
    return StepApi.response(status, **s.StepResultSchema().dump(issuance))


class IssuanceApi(StepApi):
    resource_name = "issuances"
    class_permission_name = "IssuanceApi"
    openapi_spec_tag = "Issuances"

    @step("/", "post",
          summary="Apply for a reserve card in person (the caller is the first attester)",
          answer="Stored, awaiting approval by Televäxeln", body="ApplicationSchema", status=201,
          answer_schema="CreatedIssuanceSchema")
    def post(self):
        """In-person application; every attester signs in here, the caller (attester 1) too."""
        data = json_body(s.ApplicationSchema())
        others = _other_attesters(data)
        application = workflow("application")
        attestations = [application.attest_caller(data["password"])]
        attestations += [application.attest(o["username"], o["password"]) for o in others]
        # The answer is what was just written: no reload of the rows after the commit.
        session = db.session()
        session.expire_on_commit = False
        try:
            issuance = application.apply_in_person(
                data["card_serial"], data["recipient_hsa_id"], data["reason"], attestations,
                recipient_present=data["recipient_present"],
                envelope_unopened=data["envelope_unopened"],
                valid_until=data["valid_until"], assignment=data["assignment"],
            )
        finally:
            session.expire_on_commit = True
        return self.response(201, **s.CreatedIssuanceSchema().dump(issuance))

    @expose("/", methods=["GET"])
    @protect()
    @safe
    @permission_name("get")
    @api_step
    def get_list(self):
        """Issuances, newest first.

        Deep pages by keyset: follow `next` (or pass `after=<the last id of a page>`), which
        costs the same on page 1 and page 1000. `page` is for small offsets.
        ---
        get:
          summary: List issuances
          description: >-
            Newest first (by id). `count` is exact up to 10 000; above that `count_exact` is
            false. Page deeply with `after` (keyset): `next` is the URL of the following page.
            `page` (an offset of page × page_size rows) is meant for the first pages.
          parameters:
          - {in: query, name: status, schema: {type: string}}
          - {in: query, name: channel, schema: {type: string, enum: [in_person, registered_mail]}}
          - {in: query, name: card_serial, schema: {type: string, pattern: '^[0-9]{6,20}$'}}
          - {in: query, name: recipient_hsa_id, schema: {type: string}}
          - {in: query, name: page, schema: {type: integer, minimum: 0, maximum: 100000}}
          - {in: query, name: page_size, schema: {type: integer, minimum: 1, maximum: 100}}
          - after  # the keyset cursor, a parameter component
          responses:
            200:
              description: One page of issuances
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/IssuanceListSchema'
        """
        args = s.IssuanceQuerySchema().load(request.args.to_dict())
        size = args["page_size"]
        count = bounded_count(db.session, _filtered(select(Issuance.id), args),
                              None if _any_filter(args) else Issuance.__tablename__)
        # The page's ids first, on the index; its rows and relations after.
        ids_query = _filtered(select(Issuance.id), args).order_by(Issuance.id.desc())
        if args["after"]:
            # Every issuance is in the list of those who may read it: no row scope.
            anchor = cursor_anchor(NEWEST_FIRST.anchor(db.session, select(Issuance.id),
                                                       args["after"]))
            ids_query = NEWEST_FIRST.following(ids_query, anchor)
        else:
            ids_query = ids_query.offset(args["page"] * size)
        # One statement: the rows (with their joined relations) joined to the page's ids.
        page = ids_query.limit(size).subquery()
        rows = db.session.execute(
            select(Issuance).join(page, Issuance.id == page.c.id)
            .order_by(Issuance.id.desc())
            .options(selectinload(Issuance.attesters).joinedload(IssuanceAttester.person))
        ).unique().scalars().all()
        ids = [row.id for row in rows]
        cleared = current_user_cleared()
        following = next_page_url("IssuanceApi.get_list", ids[-1] if len(ids) == size else None)
        return self.response(200, **s.IssuanceListSchema().dump(
            {**count.as_dict(), "next": following,
             "result": [issuance_view(row, cleared) for row in rows]}))

    @expose("/<int:pk>", methods=["GET"])
    @protect()
    @safe
    @permission_name("get")
    @api_step
    def get(self, pk):
        """One issuance with its attesters, extension and history.
        ---
        get:
          summary: Get an issuance
          parameters:
          - {in: path, name: pk, required: true, schema: {type: integer}}
          responses:
            200:
              description: The issuance
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/IssuanceDetailSchema'
        """
        issuance = _load(pk)
        cleared = current_user_cleared()
        view = issuance_view(issuance, cleared)
        view["history"] = history(pk, cleared)
        return self.response(200, **s.IssuanceDetailSchema().dump(view))

    @expose("/<int:pk>/receipt.pdf", methods=["GET"])
    @protect()
    @safe
    @permission_name("receipt_pdf")
    @api_step
    def receipt_pdf(self, pk):
        """The receipt to print and sign, for the attesters of the issuance and Servicecenter.
        ---
        get:
          summary: The receipt (kvittens) as PDF
          parameters:
          - {in: path, name: pk, required: true, schema: {type: integer}}
          responses:
            200:
              description: The receipt
              content:
                application/pdf:
                  schema: {type: string, format: binary}
        """
        from app import pdf

        issuance = _load(pk)
        lifecycle = workflow("lifecycle")
        if not lifecycle.may_print_receipt(_current_user(), issuance):
            return self.response_403()
        if not lifecycle.has_printable_receipt(issuance):
            return self.response(404, message=str(_l(
                "A registered-mail issuance has no receipt to print here: its receipt is in "
                "the letter of the mail flow.")), errors={})
        body = pdf.render_receipt(issuance)
        response = current_app.response_class(body, mimetype="application/pdf")
        response.headers["Content-Disposition"] = (
            f'inline; filename="kvittens-{issuance.card.serial}.pdf"')
        return response

    @step("/<int:pk>/approve", "approve",
          summary="Approve (every Kobe check confirmed)", answer="Approved", body="ApproveSchema")
    def approve(self, pk):
        """Televäxeln approves after checking Kobe."""
        data = json_body(s.ApproveSchema())
        return step_answer(workflow("approval").approve(pk, data["kobe_reference"], data["checks"]))

    @step("/<int:pk>/reject", "reject", summary="Reject", answer="Rejected", body="ReasonSchema")
    def reject(self, pk):
        """Televäxeln rejects with a reason."""
        data = json_body(s.ReasonSchema())
        workflow("approval").reject(pk, data["reason"])
        return step_answer(_load(pk))

    @step("/<int:pk>/receipt", "receipt",
          summary="Register the signed receipt", answer="Registered")
    def receipt(self, pk):
        """Servicecenter registers the signed receipt."""
        return step_answer(workflow("lifecycle").register_receipt(pk))

    @step("/<int:pk>/extend", "extend", summary="Extend once",
          answer="Extended; `valid_until` is the new end date", body="ExtendSchema")
    def extend(self, pk):
        """The one extension, by the original length, for the same reason."""
        data = json_body(s.ExtendSchema())
        return step_answer(workflow("lifecycle").extend(pk, same_reason=data["same_reason"]))

    @step("/<int:pk>/return", "return", summary="Register the return of the card",
          answer="Returned", body="ReturnSchema", body_required=False)
    def return_card(self, pk):
        """The card is back at Servicecenter."""
        data = _optional_body(s.ReturnSchema())
        workflow("lifecycle").return_card(pk, then=data["then"])
        return step_answer(_load(pk))

    @step("/<int:pk>/block", "block", summary="Block", answer="Blocked", body="ReasonSchema")
    def block(self, pk):
        """Block the card (its certificate is revoked)."""
        data = json_body(s.ReasonSchema())
        workflow("lifecycle").block(pk, data["reason"])
        return step_answer(_load(pk))

    @step("/<int:pk>/lost", "lost",
          summary="Report the card lost", answer="Lost; the issuance has ended", body="LostSchema")
    def lost(self, pk):
        """The card is reported lost: the issuance ends, the certificate is to be blocked, a
        deviation is filed, and the person may get another card."""
        data = json_body(s.LostSchema())
        workflow("lifecycle").report_lost(pk, data["note"])
        return step_answer(_load(pk))


def _other_attesters(data) -> list[dict]:
    """`other_attesters`, or `second_attester` as the shorthand for one other; not both."""
    if data["other_attesters"] is not None and data["second_attester"] is not None:
        raise ValidationError({"second_attester": [str(_l(
            "Give the other attesters in other_attesters or second_attester, not both."))]})
    if data["other_attesters"] is not None:
        return data["other_attesters"]
    return [data["second_attester"]] if data["second_attester"] is not None else []


def _optional_body(schema):
    if not request.get_data():
        return schema.load({})
    return json_body(schema)


def _any_filter(args) -> bool:
    return any(args[key] for key in ("status", "channel", "card_serial", "recipient_hsa_id"))


def _filtered(query, args):
    if args["status"]:
        query = query.where(Issuance.status == args["status"])
    if args["channel"]:
        query = query.where(Issuance.channel == args["channel"])
    if args["card_serial"]:
        query = query.where(Issuance.card_id.in_(
            select(ReserveCard.id).where(ReserveCard.serial == args["card_serial"])))
    if args["recipient_hsa_id"]:
        query = query.where(Issuance.recipient_id.in_(
            select(Person.id).where(Person.hsa_id == args["recipient_hsa_id"])))
    return query


class MailIssuanceApi(StepApi):
    resource_name = "mail-issuances"
    class_permission_name = "MailIssuanceApi"
    openapi_spec_tag = "Registered mail"

    @step("/", "post", summary="Prepare a registered-mail issuance", answer="Prepared",
          body="MailPrepareSchema", status=201)
    def post(self):
        """A card handler prepares a registered-mail issuance."""
        data = json_body(s.MailPrepareSchema())
        issuance = workflow("mail_flow").prepare(
            data["card_serial"], data["recipient_hsa_id"], data["reason"], data["address"],
            data["justification"], valid_until=data["valid_until"],
            assignment=data["assignment"])
        return step_answer(issuance, 201)

    @step("/<int:pk>/dispatched", "dispatched",
          summary="Record the dispatch", answer="Sent", body="DispatchedSchema")
    def dispatched(self, pk):
        """The envelope went by registered mail."""
        data = json_body(s.DispatchedSchema())
        workflow("mail_flow").dispatched(pk, data["registered_mail_number"])
        return step_answer(_load(pk))

    @step("/<int:pk>/receipt-returned", "receipt_returned",
          summary="Record the returned receipt", answer="Receipt received")
    def receipt_returned(self, pk):
        """The signed receipt came back."""
        workflow("mail_flow").receipt_returned(pk)
        return step_answer(_load(pk))

    @step("/<int:pk>/certificate-issued", "certificate_issued",
          summary="Record the issued certificate", answer="Active")
    def certificate_issued(self, pk):
        """The certificate was created in the SITHS portal
        ("Identifierad med rekommenderad post")."""
        return step_answer(workflow("mail_flow").certificate_issued(pk))
