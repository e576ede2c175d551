"""Reservkortsapplikationen: the in-person issuance wizard for attesters.

Five steps (card, recipient, reason and end date, second attester, summary). What has been
entered lives in the Flask session under a wizard id until completion, so going back keeps it
and an abandoned wizard reserves nothing. Every attester authenticates in the wizard itself, the
logged-in attester 1 too (password again, or the card with client-certificate login); each
password is checked once and never stored: only the person's id and the time of
authentication. Every rule is checked by the
workflow; refusals are shown on the step where they arise.
"""

import secrets
from datetime import date, datetime, timedelta

from flask import abort, current_app, flash, make_response, redirect, request, session, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import BooleanField, PasswordField, RadioField, StringField, TextAreaField
from wtforms.fields import DateField
from wtforms.validators import InputRequired, Optional

from app import access, clock, pdf
from app.errors import NotFound, RuleViolation
from app.extensions import db
from app.security import person_for_user
from app.validation import FieldError
from app.workflow import application, lifecycle
from models import Issuance, Person

SESSION_KEY = "application_wizards"
MAX_OPEN_WIZARDS = 5  # the session is a cookie: keep it small
STEP_ERRORS = (RuleViolation, FieldError, NotFound)
STEPS = (
    ("card", _l("Card")),
    ("recipient", _l("Recipient")),
    ("reason", _l("Reason and end date")),
    ("attesters", _l("Attesters")),
    ("summary", _l("Summary")),
)


# --- forms ------------------------------------------------------------------------------------

class CardForm(FlaskForm):
    serial = StringField(
        _l("Card number"), validators=[InputRequired()],
        render_kw={"data-card-serial": True, "autofocus": True, "autocomplete": "off",
                   "inputmode": "numeric"},
    )


class RecipientForm(FlaskForm):
    query = StringField(_l("HSA-id or personal identity number"), validators=[InputRequired()],
                        render_kw={"autofocus": True, "autocomplete": "off"})


class ReasonForm(FlaskForm):
    reason = RadioField(_l("Reason"), validators=[InputRequired()])
    valid_until = DateField(_l("End date"), validators=[Optional()])
    assignment = TextAreaField(_l("Assignment"), render_kw={"rows": 3})


class CallerForm(FlaskForm):
    """Attester 1, already logged in, authenticates again in this application."""

    password = PasswordField(_l("Your password"), validators=[Optional()],
                             render_kw={"autocomplete": "off", "autofocus": True})


class AttesterForm(FlaskForm):
    username = StringField(_l("Username"), validators=[InputRequired()],
                           render_kw={"autocomplete": "off", "autofocus": True})
    password = PasswordField(_l("Password"), validators=[InputRequired()],
                             render_kw={"autocomplete": "off"})


class SummaryForm(FlaskForm):
    recipient_present = BooleanField(_l("The recipient is present here and now"))
    envelope_unopened = BooleanField(_l("The card was taken from an unopened envelope"))


# --- the wizard's state in the session --------------------------------------------------------

def _idle_limit() -> timedelta:
    return timedelta(minutes=current_app.config["WIZARD_IDLE_MINUTES"])


def _open_wizards() -> dict:
    """The wizards in this session that are not idle for too long (expired ones are dropped)."""
    wizards = session.get(SESSION_KEY) or {}
    now = clock.now()
    alive = {wid: state for wid, state in wizards.items()
             if now - datetime.fromisoformat(state["touched"]) <= _idle_limit()}
    if len(alive) != len(wizards):
        session[SESSION_KEY] = alive
    return alive


def _save(wid: str, state: dict) -> None:
    wizards = _open_wizards()
    state["touched"] = clock.now().isoformat()
    wizards[wid] = state
    newest = sorted(wizards.items(), key=lambda item: item[1]["touched"])[-MAX_OPEN_WIZARDS:]
    session[SESSION_KEY] = dict(newest)


def _discard(wid: str) -> None:
    wizards = _open_wizards()
    wizards.pop(wid, None)
    session[SESSION_KEY] = wizards


def _refused(form_field, exc) -> None:
    """Show a refusal inline on the step (never an error page)."""
    message = exc.message if hasattr(exc, "message") else str(exc)
    if form_field is not None:
        form_field.errors = [*form_field.errors, message]
    else:
        flash(message, "danger")


def _recipient(state) -> Person | None:
    person_id = state.get("recipient_id")
    return db.session.get(Person, person_id) if person_id else None


def _attester_people(state) -> list[Person]:
    return [db.session.get(Person, entry["person_id"]) for entry in state.get("attesters", [])]


def _attestations(state) -> list:
    """Who authenticated in this wizard and when: attester 1 first, then the others."""
    entries = ([state["me"]] if state.get("me") else []) + list(state.get("attesters", []))
    return [application.Attestation(db.session.get(Person, entry["person_id"]),
                                    datetime.fromisoformat(entry["at"]))
            for entry in entries]


def _card(state):
    """The chosen card (its own expiry caps the end date), or None."""
    from app.workflow import stock

    try:
        return stock.find_card(state["serial"]) if state.get("serial") else None
    except NotFound:
        return None


def _me() -> Person | None:
    return person_for_user(current_user)


def _others_needed(recipient) -> int:
    """Attesters to authenticate besides the logged-in user (attester 1)."""
    return max(application.attesters_required(recipient) - 1, 0)


def _first_missing_step(state) -> str | None:
    if not state.get("serial"):
        return "card"
    if not state.get("recipient_id"):
        return "recipient"
    if not state.get("reason_done"):
        return "reason"
    if not state.get("me"):
        return "attesters"
    if len(state.get("attesters", [])) < _others_needed(_recipient(state)):
        return "attesters"
    return None


def _reason_choices(start: date, card=None) -> list[tuple[str, str]]:
    days = current_app.config["REASON_MAX_DAYS"]
    return [
        (code, _("%(reason)s (max %(days)s days, until %(date)s at the latest)",
                 reason=label, days=days[code],
                 date=application.max_valid_until(code, start, card).isoformat()))
        for code, label in application.REASON_LABELS.items()
    ]


def _max_dates(start: date, card=None) -> dict[str, str]:
    return {code: application.max_valid_until(code, start, card).isoformat()
            for code in application.REASON_LABELS}


# --- the view ---------------------------------------------------------------------------------

class ApplicationWizardView(BaseView):
    route_base = "/ansokan"
    default_view = "start"
    class_permission_name = "ApplicationWizardView"
    method_permission_name = {
        "start": "apply", "card": "apply", "recipient": "apply", "reason": "apply",
        "attesters": "apply", "summary": "apply", "done": "apply", "receipt_pdf": "receipt_pdf",
    }

    # -- plumbing --

    def _state_or_restart(self, wid):
        """The wizard's state, or a redirect to a new wizard when it expired or is unknown."""
        state = _open_wizards().get(wid)
        if state is not None and state.get("user_id") != current_user.id:
            state = None  # a wizard belongs to the attester who started it
        if state is None:
            flash(_("The application was idle for more than %(minutes)s minutes and was "
                    "abandoned; nothing was saved. Start again.",
                    minutes=current_app.config["WIZARD_IDLE_MINUTES"]), "warning")
            return None, redirect(url_for(".start"))
        return state, None

    def _guard(self, wid, step):
        """Load the state and send the user to the first step not yet done before `step`."""
        state, restart = self._state_or_restart(wid)
        if restart is not None:
            return None, restart
        missing = _first_missing_step(state)
        order = [name for name, _label in STEPS]
        if missing is not None and order.index(missing) < order.index(step):
            return None, redirect(url_for(f".{missing}", wid=wid))
        return state, None

    def _page(self, template, wid, step, state, **context):
        _save(wid, state)
        return self.render_template(
            f"wizard/{template}", wid=wid, step=step, steps=STEPS, state=state,
            missing=_first_missing_step(state), **context,
        )

    def _next(self, wid, state, step):
        _save(wid, state)
        return redirect(url_for(f".{step}", wid=wid))

    # -- the steps --

    @expose("/", methods=["GET"])
    @has_access
    def start(self):
        wid = secrets.token_urlsafe(9)
        _save(wid, {"user_id": current_user.id, "attesters": []})
        return redirect(url_for(".card", wid=wid))

    @expose("/<wid>/kort", methods=["GET", "POST"])
    @has_access
    def card(self, wid):
        state, redirected = self._guard(wid, "card")
        if redirected:
            return redirected
        form = CardForm(data={"serial": state.get("serial", "")})
        if form.validate_on_submit():
            try:
                card = application.check_card(form.serial.data, recipient=_recipient(state))
            except STEP_ERRORS as exc:
                _refused(form.serial, exc)
            else:
                state["serial"] = card.serial
                return self._next(wid, state, "recipient")
        return self._page("card.html", wid, "card", state, form=form)

    @expose("/<wid>/mottagare", methods=["GET", "POST"])
    @has_access
    def recipient(self, wid):
        state, redirected = self._guard(wid, "recipient")
        if redirected:
            return redirected
        form = RecipientForm(data={"query": state.get("recipient_query", "")})
        person = _recipient(state)
        if form.validate_on_submit():
            # A name typed instead: the one person with it, or the field says what to type.
            named = self._name_to_hsa_id(form)
            person = self._search_recipient(form, state) if named is not False else None
            if person is not None and person.id == state.get("recipient_id"):
                return self._next(wid, state, "recipient")
        facts = application.recipient_facts(person) if person is not None else None
        return self._page("recipient.html", wid, "recipient", state, form=form, facts=facts,
                          accepted=person is not None and person.id == state.get("recipient_id"))

    @staticmethod
    def _name_to_hsa_id(form):
        """A name typed instead of an HSA-id: the one person the login may see with that name
        (their HSA-id put in the field and said in a message to check, True), or the field
        says what to type (False). None when no name was typed."""
        from app import search

        typed = form.query.data or ""
        if not search.looks_like_a_name(typed):
            return None
        try:
            hsa_id, person = search.hsa_id_or_name(typed, field="query")
        except FieldError as exc:
            _refused(form.query, exc)
            return False
        form.query.data = hsa_id
        flash(_("Found by the name \u201c%(name)s\u201d: %(person)s. Check that this is the "
                "right person before you go on.", name=" ".join(typed.split()),
                person=f"{access.display_name(person)} ({hsa_id})"), "info")
        return True

    def _search_recipient(self, form, state) -> Person | None:
        """Find the person and apply the recipient rules; keep them only when all hold."""
        state["recipient_query"] = form.query.data.strip()
        try:
            person = application.find_recipient(form.query.data)
        except STEP_ERRORS as exc:
            _refused(form.query, exc)
            state.pop("recipient_id", None)
            return None
        try:
            application.check_recipient(person)
            # The logged-in attester cannot be the recipient: said here, not at step 4.
            application.check_recipient_not_attester(person)
            # The card may be bound to its first holder: check it against this person.
            application.check_card(state["serial"], recipient=person)
        except STEP_ERRORS as exc:
            _refused(form.query, exc)
            state.pop("recipient_id", None)
            return person
        if state.get("recipient_id") != person.id:
            # Attester and reason checks depend on the recipient: they must be done again.
            state["attesters"] = []
            state["reason_done"] = False
        state["recipient_id"] = person.id
        return person

    @expose("/<wid>/orsak", methods=["GET", "POST"])
    @has_access
    def reason(self, wid):
        state, redirected = self._guard(wid, "reason")
        if redirected:
            return redirected
        today = clock.today()
        form = ReasonForm(data=self._reason_data(state, today))
        card = _card(state)
        form.reason.choices = _reason_choices(today, card)
        if form.validate_on_submit():
            if self._check_reason(form, state, today):
                return self._next(wid, state, "attesters")
        return self._page("reason.html", wid, "reason", state, form=form,
                          max_dates=_max_dates(today, card), facts=None)

    @staticmethod
    def _reason_data(state, today) -> dict:
        reason = state.get("reason")
        chosen = state.get("valid_until") or ""
        end = None
        if chosen:
            end = date.fromisoformat(chosen)
        elif reason:
            end = application.max_valid_until(reason, today, _card(state))
        return {"reason": reason, "valid_until": end, "assignment": state.get("assignment", "")}

    @staticmethod
    def _check_reason(form, state, today) -> bool:
        reason = form.reason.data
        state["reason"] = reason
        state["assignment"] = (form.assignment.data or "").strip()
        chosen = form.valid_until.data
        # The maximum itself is kept as "the maximum", so a changed reason moves it along.
        at_max = chosen is None or chosen == application.max_valid_until(reason, today,
                                                                          _card(state))
        state["valid_until"] = "" if at_max else chosen.isoformat()
        state["reason_done"] = False
        try:
            application.check_recipient(_recipient(state), reason)
        except STEP_ERRORS as exc:
            _refused(form.reason, exc)
            return False
        try:
            application.check_assignment(reason, state["assignment"])
        except STEP_ERRORS as exc:
            _refused(form.assignment, exc)
            return False
        try:
            application.check_validity(reason, chosen, today, card=_card(state))
        except STEP_ERRORS as exc:
            _refused(form.valid_until, exc)
            return False
        state["reason_done"] = True
        return True

    @expose("/<wid>/intygsgivare", methods=["GET", "POST"])
    @has_access
    def attesters(self, wid):
        state, redirected = self._guard(wid, "attesters")
        if redirected:
            return redirected
        recipient = _recipient(state)
        form = AttesterForm()
        caller_form = CallerForm(prefix="me")
        if request.method == "POST" and request.form.get("action") == "reset":
            state["attesters"] = []
            state.pop("me", None)
            return self._next(wid, state, "attesters")
        needed = _others_needed(recipient)
        if not state.get("me"):
            if request.method == "POST" and caller_form.validate_on_submit():
                if self._authenticate_me(caller_form, state):
                    more = len(state["attesters"]) < needed
                    return self._next(wid, state, "attesters" if more else "summary")
            caller_form.password.data = ""
            return self._page("attesters.html", wid, "attesters", state, form=form,
                              caller_form=caller_form, me=_me(), me_done=False,
                              others=_attester_people(state), needed=needed,
                              card_login=current_app.config.get("CLIENT_CERT_LOGIN"))
        if len(state["attesters"]) < needed and form.validate_on_submit():
            if self._authenticate(form, state, recipient, needed):
                more = len(state["attesters"]) < needed
                return self._next(wid, state, "attesters" if more else "summary")
        form.password.data = ""
        return self._page("attesters.html", wid, "attesters", state, form=form,
                          caller_form=caller_form, me=_me(), me_done=True,
                          others=_attester_people(state), needed=needed, card_login=False)

    @staticmethod
    def _authenticate_me(form, state) -> bool:
        """Attester 1 proves here and now that they are at the screen."""
        try:
            attestation = application.attest_caller(form.password.data or None)
        except STEP_ERRORS as exc:
            _refused(form.password, exc)
            form.password.errors = [*form.password.errors,
                                    _("Wrong password: give your own password again.")]
            return False
        state["me"] = {"person_id": attestation.person.id,
                       "at": attestation.authenticated_at.isoformat()}
        return True

    @staticmethod
    def _authenticate(form, state, recipient, needed) -> bool:
        """Check the next attester's own credentials; keep only who they are and when."""
        try:
            attestation = application.attest(form.username.data, form.password.data)
            person = attestation.person
        except STEP_ERRORS:
            # One plain message: the credentials did not prove who the attester is.
            form.password.errors = [*form.password.errors,
                                    _("Wrong username or password for the attester.")]
            return False
        people = [_me(), *_attester_people(state), person]
        if len(people) - 1 >= needed:
            try:
                application.check_attesters(recipient, [p for p in people if p is not None])
            except STEP_ERRORS as exc:
                _refused(form.username, exc)
                state["attesters"] = []
                return False
        state["attesters"].append({"person_id": person.id,
                                   "at": attestation.authenticated_at.isoformat()})
        return True

    @expose("/<wid>/sammanfattning", methods=["GET", "POST"])
    @has_access
    def summary(self, wid):
        state, redirected = self._guard(wid, "summary")
        if redirected:
            return redirected
        form = SummaryForm()
        if form.validate_on_submit():
            issuance = self._complete(form, state)
            if issuance is not None:
                _discard(wid)
                return redirect(url_for(".done", issuance_id=issuance.id))
        today = clock.today()
        end = (date.fromisoformat(state["valid_until"]) if state.get("valid_until")
               else application.max_valid_until(state["reason"], today, _card(state)))
        return self._page(
            "summary.html", wid, "summary", state, form=form, recipient=_recipient(state),
            me=_me(), others=_attester_people(state), end=end, today=today,
            reason_label=application.REASON_LABELS[state["reason"]],
        )

    @staticmethod
    def _complete(form, state) -> Issuance | None:
        try:
            return application.apply_in_person(
                card_serial=state["serial"],
                recipient_hsa_id=_recipient(state).hsa_id,
                reason=state["reason"],
                attesters=_attestations(state),
                recipient_present=bool(form.recipient_present.data),
                envelope_unopened=bool(form.envelope_unopened.data),
                valid_until=state.get("valid_until") or None,
                assignment=state.get("assignment") or None,
            )
        except FieldError as exc:
            _refused(getattr(form, exc.field, None), exc)
        except STEP_ERRORS as exc:
            _refused(None, exc)
        return None

    # -- after completion --

    def _own_issuance(self, issuance_id) -> Issuance:
        """The issuance, only for the people who attested it."""
        issuance = db.session.execute(
            select(Issuance).where(Issuance.id == issuance_id)
        ).unique().scalar_one_or_none()
        if issuance is None:
            abort(404)
        if not lifecycle.is_attester_of(current_user, issuance):
            abort(403)
        return issuance

    @expose("/<int:issuance_id>/klar", methods=["GET"])
    @has_access
    def done(self, issuance_id):
        issuance = self._own_issuance(issuance_id)
        return self.render_template(
            "wizard/done.html", issuance=issuance, steps=STEPS,
            recipient=access.shown(issuance.recipient),
            attesters=[access.shown(link.person) for link in issuance.attesters],
            reason_label=application.REASON_LABELS.get(issuance.reason, issuance.reason),
        )

    @expose("/<int:issuance_id>/kvittens.pdf", methods=["GET"])
    @has_access
    def receipt_pdf(self, issuance_id):
        issuance = self._own_issuance(issuance_id)
        if not lifecycle.has_printable_receipt(issuance):
            abort(404)
        response = make_response(pdf.render_receipt(issuance))
        response.headers["Content-Type"] = "application/pdf"
        response.headers["Content-Disposition"] = (
            f'inline; filename="{pdf.receipt_filename(issuance)}"')
        response.headers["Cache-Control"] = "no-store"
        return response


def register(appbuilder) -> None:
    appbuilder.add_view(
        ApplicationWizardView,
        "New application",
        label=_l("New application"),
        icon="fa-id-card",
        category="Issuances",
        category_label=_l("Issuances"),
    )
