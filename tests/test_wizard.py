"""Reservkortsapplikationen: the in-person wizard driven through the browser, step by step."""

import html
import re
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select

from app import clock
from app.errors import refuse
from app.extensions import db
from models import Issuance, OutboxMessage, ReserveCard

PASSWORD = "Reservkort-demo-2026"
ANNA = "SE2321000131-E000000000001"  # Anna Åkesson: ordinary card active
HELENA = "SE2321000131-E000000000008"  # Helena Håkansson, the person of login intygsgivare2
CECILIA = "SE2321000131-E000000000003"
STEP_PATHS = {"card": "kort", "recipient": "mottagare", "reason": "orsak",
              "attesters": "intygsgivare", "summary": "sammanfattning"}


def page_text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def rule_message(rule, **params) -> str:
    """The rule's message as the UI shows it (Swedish catalog)."""
    with current_app.test_request_context():
        return refuse(rule, **params).message


class Wizard:
    """Drives one wizard run through the test client."""

    def __init__(self, client):
        self.client = client
        response = client.get("/ansokan/")
        assert response.status_code == 302
        match = re.fullmatch(r"/ansokan/([^/]+)/kort", response.headers["Location"])
        assert match, response.headers["Location"]
        self.wid = match.group(1)

    def url(self, step):
        return f"/ansokan/{self.wid}/{STEP_PATHS[step]}"

    def get(self, step):
        return self.client.get(self.url(step))

    def post(self, step, **data):
        return self.client.post(self.url(step), data=data)

    def card(self, serial):
        return self.post("card", serial=serial)

    def recipient(self, query):
        return self.post("recipient", query=query)

    def reason(self, reason, valid_until="", assignment=""):
        return self.post("reason", reason=reason, valid_until=valid_until, assignment=assignment)

    def me(self, password=PASSWORD):
        """Attester 1 (logged in) authenticates again in the application."""
        self.me_done = True
        return self.post("attesters", **{"me-password": password})

    def attester(self, username, password=PASSWORD):
        if not getattr(self, "me_done", False):
            self.me()
        return self.post("attesters", username=username, password=password)

    def complete(self, present=True, unopened=True):
        data = {}
        if present:
            data["recipient_present"] = "y"
        if unopened:
            data["envelope_unopened"] = "y"
        return self.post("summary", **data)


def run_wizard(client, serial, recipient=ANNA, reason="lost_stolen_damaged", valid_until="",
               second="intygsgivare2", assignment=""):
    """A complete run; returns the new issuance id."""
    wizard = Wizard(client)
    assert wizard.card(serial).headers["Location"].endswith("/mottagare")
    assert wizard.recipient(recipient).status_code == 302
    assert wizard.reason(reason, valid_until, assignment).headers["Location"].endswith(
        "/intygsgivare")
    assert wizard.attester(second).headers["Location"].endswith("/sammanfattning")
    response = wizard.complete()
    assert response.status_code == 302, page_text(response)
    match = re.fullmatch(r"/ansokan/(\d+)/klar", response.headers["Location"])
    assert match, response.headers["Location"]
    return int(match.group(1))


def issuance_count() -> int:
    return db.session.execute(select(func.count(Issuance.id))).scalar_one()


def assert_refused_on(response, step, message):
    """A refusal is shown on the step itself: the page, not an error page or a redirect."""
    assert response.status_code == 200
    assert response.request.path.endswith(STEP_PATHS[step])
    text = page_text(response)
    assert message in text
    assert "rk-step-error" in text or "alert-danger" in text


# --- the whole run ----------------------------------------------------------------------------

def test_complete_run_stores_issuance_card_out_and_mail_queued(login, in_stock_card):
    client = login("Intygsgivare")
    serial = in_stock_card().serial
    wizard = Wizard(client)

    step1 = wizard.get("card")
    text = page_text(step1)
    assert "Ny ansökan" in text and "Kortnummer" in text
    serial_input = re.search(r"<input[^>]*name=\"serial\"[^>]*>", text).group(0)
    assert "data-card-serial" in serial_input and "autofocus" in serial_input
    assert "js/wizard.js" in text and "<script>" not in text  # no inline script

    assert wizard.card(serial).headers["Location"].endswith("/mottagare")
    # Found by personal identity number; the facts the rules need are shown.
    found = wizard.recipient("19800101-1231")
    assert found.headers["Location"].endswith("/mottagare")
    facts = page_text(wizard.get("recipient"))
    assert "Anna Åkesson" in facts and ANNA in facts and "Aktivt kort" in facts

    reason_page = page_text(wizard.get("reason"))
    assert "max 30 dagar" in reason_page and "max 100 dagar" in reason_page
    assert "max 10 dagar" in reason_page
    assert wizard.reason("lost_stolen_damaged").status_code == 302

    attesters = page_text(wizard.get("attesters"))
    assert "Gustav Gran" in attesters  # attester 1 is the logged-in user
    assert wizard.attester("intygsgivare2").headers["Location"].endswith("/sammanfattning")
    summary = page_text(wizard.get("summary"))
    end = clock.today() + timedelta(days=30)
    assert end.isoformat() in summary and "Helena Håkansson" in summary
    assert issuance_count() == 0  # nothing is written before completion

    response = wizard.complete()
    issuance_id = int(re.fullmatch(r"/ansokan/(\d+)/klar", response.headers["Location"]).group(1))
    issuance = db.session.get(Issuance, issuance_id)
    assert issuance.status == "awaiting_approval"
    assert issuance.card.serial == serial and issuance.card.status == "issued"
    assert issuance.recipient.hsa_id == ANNA
    assert [a.person.name for a in issuance.attesters] == ["Gustav Gran", "Helena Håkansson"]
    assert issuance.valid_until == end
    assert issuance.receipt_due == clock.today() + timedelta(days=7)

    done = page_text(client.get(f"/ansokan/{issuance_id}/klar"))
    assert f"/ansokan/{issuance_id}/kvittens.pdf" in done
    assert issuance.receipt_due.isoformat() in done
    pdf = client.get(f"/ansokan/{issuance_id}/kvittens.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")

    addresses = {address.strip() for row in db.session.execute(
        select(OutboxMessage.to_addrs).where(OutboxMessage.issuance_id == issuance_id,
                                             OutboxMessage.template == "application_completed")
    ).scalars() for address in row.split(",")}
    assert addresses == {"person1@example.se", "person7@example.se", "person8@example.se"}

    # The wizard is finished: its state is gone.
    assert wizard.get("summary").headers["Location"].endswith("/ansokan/")


def test_earlier_end_date_and_assignment_are_kept(login, in_stock_card, session):
    end = clock.today() + timedelta(days=20)
    # Cecilia Ängström: no ordinary card, but a reserve-card order in Kobe.
    issuance_id = run_wizard(login("Intygsgivare"), in_stock_card().serial,
                             recipient=CECILIA, reason="temporary_assignment",
                             valid_until=end.isoformat(), assignment="Jourtjänst på Varberg")
    issuance = session.get(Issuance, issuance_id)
    assert issuance.valid_until == end
    assert issuance.assignment == "Jourtjänst på Varberg"
    assert issuance.reason == "temporary_assignment"


# --- refusals, each on its own step ----------------------------------------------------------

def _lost_card_serial(session) -> str:
    card = session.execute(select(ReserveCard).where(ReserveCard.loa == "LOA2")
                           .order_by(ReserveCard.expires_on).limit(1)).unique().scalar_one()
    card.status = "lost"
    session.commit()
    return card.serial


def test_card_refused_on_card_step(login, session):
    loa3 = session.execute(select(ReserveCard.serial).where(ReserveCard.loa == "LOA3")
                           .limit(1)).scalar_one()
    refusals = [("1234567890", "card_unknown"), (loa3, "card_not_loa2"),
                (_lost_card_serial(session), "card_not_in_stock")]
    wizard = Wizard(login("Intygsgivare"))
    for serial, rule in refusals:
        response = wizard.card(serial)
        assert_refused_on(response, "card", rule_message(rule, serial=serial))
        assert "The card" not in page_text(response)  # the message is shown in Swedish
        # The wizard did not move on.
        assert wizard.get("recipient").headers["Location"].endswith("/kort")


def test_recipient_refused_on_recipient_step(login, in_stock_card):
    refusals = [
        ("E000000000005", "Eva Ek", "recipient_protected_identity"),
        ("E000000000006", "Fredrik Falk", "recipient_no_personal_number"),
        ("E000000000004", "David Dahl", "recipient_no_card_or_order"),
        ("E999999999999", None, "recipient_unknown"),
    ]
    wizard = Wizard(login("Intygsgivare"))
    wizard.card(in_stock_card().serial)
    for suffix, name, rule in refusals:
        query = f"SE2321000131-{suffix}"
        response = wizard.recipient(query)
        assert_refused_on(response, "recipient", rule_message(rule, name=name, hsa_id=query))
        assert wizard.get("reason").headers["Location"].endswith("/mottagare")
        if rule == "recipient_protected_identity":
            assert name not in page_text(response)  # masked
            assert "Skyddad identitet" in page_text(response)


def test_recipient_with_an_open_reserve_card_is_refused(login, in_stock_card):
    client = login("Intygsgivare")
    run_wizard(client, in_stock_card().serial)
    wizard = Wizard(client)
    wizard.card(in_stock_card().serial)
    response = wizard.recipient(ANNA)
    assert_refused_on(response, "recipient",
                      rule_message("recipient_has_open_issuance", name="Anna Åkesson"))


def test_validity_longer_than_the_reason_allows_is_refused(login, in_stock_card):
    wizard = Wizard(login("Intygsgivare"))
    wizard.card(in_stock_card().serial)
    wizard.recipient(ANNA)
    latest = clock.today() + timedelta(days=10)
    response = wizard.reason("forgotten", (latest + timedelta(days=1)).isoformat())
    assert_refused_on(response, "reason", rule_message(
        "validity_too_long", max_date=latest.isoformat(), max_days=10))
    assert wizard.get("attesters").headers["Location"].endswith("/orsak")
    # The maximum itself is accepted.
    assert wizard.reason("forgotten", latest.isoformat()).status_code == 302


def test_reason_needing_a_kobe_order_is_refused_on_reason_step(login, in_stock_card):
    wizard = Wizard(login("Intygsgivare"))
    wizard.card(in_stock_card().serial)
    wizard.recipient(ANNA)  # ordinary card active, nothing ordered
    response = wizard.reason("awaiting_new_card")
    assert_refused_on(response, "reason", rule_message("new_card_not_ordered"))


def test_a_recipient_who_is_the_logged_in_attester_is_refused_on_the_recipient_step(
        login, in_stock_card):
    wizard = Wizard(login("Intygsgivare"))  # intygsgivare1 is Gustav Gran
    wizard.card(in_stock_card().serial)
    response = wizard.recipient("SE2321000131-E000000000007")
    assert_refused_on(response, "recipient", rule_message("attester_is_recipient"))
    assert wizard.get("reason").headers["Location"].endswith("/mottagare")


def test_second_attester_refused_on_attester_step(login, in_stock_card):
    wizard = Wizard(login("Intygsgivare"))
    wizard.card(in_stock_card().serial)
    wizard.recipient(ANNA)
    wizard.reason("forgotten")
    response = wizard.attester("intygsgivare2", "wrong-password")
    # One plain message about the password, not a second one about the number of attesters.
    assert page_text(response).count("Fel användarnamn eller lösenord") == 1
    assert rule_message("attesters_too_few", required=2, given=1) not in page_text(response)
    assert wizard.get("summary").headers["Location"].endswith("/intygsgivare")
    # The logged-in attester cannot also be the second one.
    response = wizard.attester("intygsgivare1")
    assert_refused_on(response, "attesters", rule_message("attesters_not_distinct"))
    assert wizard.get("summary").headers["Location"].endswith("/intygsgivare")


def test_recipient_as_attester_is_refused(login, in_stock_card):
    wizard = Wizard(login("Intygsgivare"))
    wizard.card(in_stock_card().serial)
    wizard.recipient(HELENA)
    wizard.reason("forgotten")
    response = wizard.attester("intygsgivare2")  # Helena Håkansson herself
    assert_refused_on(response, "attesters", rule_message("attester_is_recipient"))
    assert wizard.get("summary").headers["Location"].endswith("/intygsgivare")


def test_completion_without_the_confirmations_is_refused(login, in_stock_card):
    wizard = Wizard(login("Intygsgivare"))
    wizard.card(in_stock_card().serial)
    wizard.recipient(ANNA)
    wizard.reason("forgotten")
    wizard.attester("intygsgivare2")
    response = wizard.complete(present=False)
    assert response.status_code == 200 and response.request.path.endswith("/sammanfattning")
    assert "rk-step-error" in page_text(response)
    assert issuance_count() == 0


# --- state: back keeps values, secrets never kept, idle expiry --------------------------------

def test_going_back_keeps_what_was_entered(login, in_stock_card):
    client = login("Intygsgivare")
    serial = in_stock_card().serial
    wizard = Wizard(client)
    wizard.card(serial)
    wizard.recipient("19800101-1231")
    end = (clock.today() + timedelta(days=4)).isoformat()
    wizard.reason("forgotten", end)
    wizard.attester("intygsgivare2")

    assert f'value="{serial}"' in page_text(wizard.get("card"))
    assert 'value="19800101-1231"' in page_text(wizard.get("recipient"))
    reason_page = page_text(wizard.get("reason"))
    assert re.search(r'<input checked[^>]*value="forgotten"', reason_page)
    assert f'value="{end}"' in reason_page
    assert "Helena Håkansson" in page_text(wizard.get("attesters"))
    # Nothing was lost: the summary is still reachable and shows the chosen end date.
    summary = wizard.get("summary")
    assert summary.status_code == 200 and end in page_text(summary)


def test_session_never_holds_the_attester_password(login, in_stock_card):
    client = login("Intygsgivare")
    wizard = Wizard(client)
    wizard.card(in_stock_card().serial)
    wizard.recipient(ANNA)
    wizard.reason("forgotten")
    wizard.attester("intygsgivare2")
    with client.session_transaction() as stored:
        state = stored["application_wizards"][wizard.wid]
        assert PASSWORD not in repr(dict(stored))
    assert [set(entry) for entry in state["attesters"]] == [{"person_id", "at"}]


def test_idle_wizard_expires_and_reserves_nothing(login, in_stock_card, set_now):
    start = set_now(clock.now())
    client = login("Intygsgivare")
    serial = in_stock_card().serial
    wizard = Wizard(client)
    wizard.card(serial)
    wizard.recipient(ANNA)
    idle = timedelta(minutes=current_app.config["WIZARD_IDLE_MINUTES"])
    # Idle time counts from the last step, not from the start.
    set_now(start + idle - timedelta(minutes=1))
    assert wizard.reason("forgotten").status_code == 302
    set_now(start + 2 * idle - timedelta(minutes=2))
    assert wizard.get("attesters").status_code == 200

    set_now(start + 3 * idle)
    response = wizard.get("attesters")
    assert response.headers["Location"].endswith("/ansokan/")
    restarted = client.get("/ansokan/", follow_redirects=True)
    assert restarted.request.path.endswith("/kort")
    assert "avbröts" in page_text(restarted)
    assert wizard.complete().headers["Location"].endswith("/ansokan/")
    assert issuance_count() == 0
    card = db.session.execute(select(ReserveCard).where(ReserveCard.serial == serial)
                              ).unique().scalar_one()
    assert card.status == "in_stock" and card.bound_person_id is None


# --- access -----------------------------------------------------------------------------------

def test_other_roles_get_403(login):
    for role in ("Servicecenter", "Televäxeln", "Korthandläggare", "Chef"):
        client = login(role)
        assert client.get("/ansokan/").status_code == 403, role
        assert client.post("/ansokan/abc/kort", data={"serial": "123456"}).status_code == 403


def test_menu_shows_the_application_under_issuances(login):
    from flask_babel import gettext

    text = page_text(login("Intygsgivare").get("/"))
    with current_app.test_request_context():
        category = gettext("Issuances")
    assert category != "Issuances"  # translated, whichever Swedish word the catalog holds
    assert re.search(re.escape(category) + r"<b class=\"caret\">", text)
    assert "Ny ansökan" in text and 'href="/ansokan/"' in text


def test_forms_carry_a_csrf_token_when_csrf_is_on(app, login, in_stock_card):
    client = login("Intygsgivare")
    app.config["WTF_CSRF_ENABLED"] = True
    wizard = Wizard(client)
    page = page_text(wizard.get("card"))
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    serial = in_stock_card().serial
    assert wizard.post("card", serial=serial).status_code == 400
    accepted = wizard.post("card", serial=serial, csrf_token=token)
    assert accepted.headers["Location"].endswith("/mottagare")


def test_a_wizard_belongs_to_the_user_who_started_it(app, login, in_stock_card):
    first = login("Intygsgivare")
    wizard = Wizard(first)
    wizard.card(in_stock_card().serial)
    with first.session_transaction() as stored:
        wizards = dict(stored["application_wizards"])
    other = login("intygsgivare2")
    with other.session_transaction() as stored:
        stored["application_wizards"] = wizards  # the same browser session, another login
    response = other.get(f"/ansokan/{wizard.wid}/mottagare")
    assert response.headers["Location"].endswith("/ansokan/")


def test_step_indicator_numbers_each_step_once_and_marks_the_current(login):
    wizard = Wizard(login("Intygsgivare"))
    text = page_text(wizard.client.get(wizard.url("card")))
    steps = re.search(r'<ol class="rk-wizard-steps">(.*?)</ol>', text, re.S).group(1)
    assert not re.search(r"\d\.\s", steps)  # the <ol> numbers them (CSS), not the labels
    items = re.findall(r'<li class="(\w+)"\s*(aria-current="step")?', steps)
    assert [cls for cls, _ in items] == ["active", "todo", "todo", "todo", "todo"]
    assert items[0][1] == 'aria-current="step"'
    assert "css/reservkort.css" in text


def test_a_name_typed_for_the_recipient_is_found_or_explained(login, in_stock_card, namesakes):
    """A name where an HSA-id is expected: one person the attester may see is found (shown
    to be checked, not taken at once); several are named with their HSA-ids; a protected
    person is never found by name (Eva Ek is protected)."""
    wizard = Wizard(login("Intygsgivare"))
    wizard.card(in_stock_card().serial)
    found = wizard.recipient("Anna Åkesson")
    assert found.headers["Location"].endswith("/mottagare")  # the facts, to be checked
    text = page_text(wizard.get("recipient"))
    assert "Hittade på namnet ”Anna Åkesson”: Anna Åkesson (SE2321000131-E000000000001)" in text
    assert f'value="{ANNA}"' in text and "rk-recipient-facts" in text
    assert wizard.get("reason").status_code == 200

    wizard = Wizard(login("Intygsgivare"))
    wizard.card(in_stock_card().serial)
    several = page_text(wizard.recipient("Tvillingsson"))
    assert ("Ange HSA-id, t.ex. SE2321000131-B123; hittade 2 personer med namnet "
            "”Tvillingsson”: Tora Tvillingsson (SE2321000131-E000000000771), Tyra "
            "Tvillingsson (SE2321000131-E000000000772).") in several
    protected = page_text(wizard.recipient("Eva Ek"))
    assert "ingen person med namnet ”Eva Ek” hittades" in protected
    assert "E000000000005" not in protected
    assert wizard.get("reason").headers["Location"].endswith("/mottagare")
