"""The access policy on what was written down before a person became protected: the audit log,
the outbox, e-mails (when queued and when sent), Televäxeln's identity check and the receipt."""

import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from app import access, mailer
from app.extensions import db
from app.workflow import approval, lifecycle, registers, sweeps
from models import AccountLink, AuditEvent, OutboxMessage
from tests.access_support import CANARY, MASK, cleared_login
from tests.workflow_support import apply, approve, at, person

ANNA = ("Anna Åkesson", "198001011231", "19800101-1231", "person1@example.se")


def _protect(as_user, name_prefix="Anna"):
    with as_user("servicecenter"):
        registers.save_person({"protected_identity": True}, person(name_prefix).id)
    db.session.commit()


def _leaks(text, strings=ANNA):
    return [s for s in strings if s.lower() in (text or "").lower()]


def test_audit_rows_of_a_protected_person_are_masked_for_admin(app, as_user, login):
    anna = person("Anna")
    with as_user("servicecenter"):
        registers.save_person({"email": "anna.akesson@example.se"}, anna.id)
    db.session.commit()
    _protect(as_user)
    rows = db.session.execute(select(AuditEvent.id).where(
        AuditEvent.entity == "person", AuditEvent.entity_id == anna.id)).scalars().all()
    assert len(rows) >= 2
    admin = login("Admin")
    for row in rows:
        text = admin.get(f"/audit-log/show/{row}").get_data(as_text=True)
        assert not _leaks(text, (*ANNA, "anna.akesson@example.se")), row
    cleared = login(cleared_login(app, "admin_cleared", roles=("Admin",)))
    seen = cleared.get(f"/audit-log/show/{rows[0]}").get_data(as_text=True)
    assert "anna.akesson@example.se" in seen


def test_masking_an_audit_value_by_key_and_by_string(app, as_user):
    _protect(as_user)
    event = AuditEvent(entity="person", entity_id=person("Anna").id)
    value = {"name": "Anna Å.", "note": "ringde Anna Åkesson 19800101-1231", "unit_id": 1}
    shown = access.audit_value(event, value, cleared=False)
    assert shown == {"name": MASK, "note": f"ringde {MASK} {MASK}", "unit_id": 1}
    assert access.audit_value(event, value, cleared=True) == value


def test_the_outbox_screen_masks_a_protected_person(app, as_user, login, set_now):
    set_now(at(date(2026, 11, 2)))
    issuance = apply(as_user)
    db.session.commit()
    _protect(as_user)
    admin = login("Admin")
    listed = admin.get("/admin/outbox/list/").get_data(as_text=True)
    assert not _leaks(listed)
    for message_id in db.session.execute(select(OutboxMessage.id).where(
            OutboxMessage.issuance_id == issuance.id)).scalars():
        assert not _leaks(admin.get(f"/admin/outbox/show/{message_id}").get_data(as_text=True))


def test_not_returned_mail_to_the_manager_does_not_name_a_person_protected_meanwhile(
        app, as_user, set_now):
    start = date(2026, 11, 2)
    set_now(at(start))
    issuance = approve(as_user, apply(as_user).id)
    with as_user("servicecenter"):
        lifecycle.register_receipt(issuance.id)
    db.session.commit()
    _protect(as_user)
    later = issuance.valid_until + timedelta(days=app.config["RETURN_GRACE_DAYS"] + 1)
    set_now(at(later))
    assert sweeps.report_not_returned(later) == 1
    db.session.commit()
    to_manager = db.session.execute(select(OutboxMessage).where(
        OutboxMessage.template == "not_returned_manager")).scalar_one()
    assert not _leaks(to_manager.subject + to_manager.body_text + to_manager.body_html)
    assert MASK in to_manager.body_text
    mailer.dispatch_due()
    files = list(Path(app.config["MAIL_DIR"]).glob("*not_returned_manager.eml"))
    assert files and not _leaks(files[0].read_text(encoding="utf-8"))


def test_a_queued_mail_is_checked_again_when_sent(app, as_user, set_now):
    set_now(at(date(2026, 11, 2)))
    apply(as_user)  # queues e-mails naming Anna, to Televäxeln among others
    db.session.commit()
    to_televaxeln = db.session.execute(select(OutboxMessage).where(
        OutboxMessage.template == "approval_requested")).scalar_one()
    assert "Anna Åkesson" in to_televaxeln.body_text  # not protected when queued
    _protect(as_user)
    mailer.dispatch_due()
    sent = Path(app.config["MAIL_DIR"]) / f"{to_televaxeln.id}-approval_requested.eml"
    assert sent.exists() and not _leaks(sent.read_text(encoding="utf-8"))


def test_an_email_to_the_person_alone_keeps_their_name(app, as_user):
    _protect(as_user)
    text = "Hej Anna Åkesson!"
    assert access.mail_texts("person1@example.se", text) == (text,)
    assert access.mail_texts("person1@example.se, person7@example.se", text) == (
        f"Hej {MASK}!",)
    assert access.mail_texts("televaxeln@example.se", text) == (f"Hej {MASK}!",)


def test_the_identity_check_and_receipt_do_not_name_a_person_protected_meanwhile(
        app, as_user, set_now):
    from app import pdf

    set_now(at(date(2026, 11, 2)))
    issuance = apply(as_user)
    db.session.commit()
    _protect(as_user)
    with as_user("televaxeln"):
        checks = {c["key"]: c["register_says"] for c in approval.approval_checks(issuance)}
        assert not _leaks(checks["identity"]) and MASK in checks["identity"]
    with as_user("servicecenter"):
        from io import BytesIO

        from pypdf import PdfReader

        body = pdf.render_receipt(issuance)
        text = "\n".join(p.extract_text() for p in PdfReader(BytesIO(body)).pages)
        assert not _leaks(text)


def test_the_login_of_a_protected_person_is_masked_on_the_user_screens_and_api(
        app, as_user, login, api_headers):
    from tests.access_support import CANARY_STRINGS, leaked, make_canary

    canary = make_canary(app, as_user, with_login=True)
    # FAB's security REST API is switched off (FAB_ADD_SECURITY_API=False): the screens and
    # the audit rows of FAB's user changes (app.security_audit) are where a login is read.
    login_rows = list(db.session.execute(select(AuditEvent.id).where(
        AuditEvent.entity == "user", AuditEvent.entity_id == canary["login"])).scalars())
    assert login_rows, "the login's creation is on the record"
    admin = login("Admin")
    for path in ("/users/list/", f"/users/show/{canary['login']}", "/admin/user-links/",
                 "/audit-log/list/", *(f"/audit-log/show/{pk}" for pk in login_rows)):
        answer = admin.get(path)
        assert answer.status_code == 200, path
        assert not leaked(answer.get_data(as_text=True), CANARY_STRINGS), path
    searched = admin.get("/users/list/", query_string={"_flt_0_first_name": "Zebulon"})
    assert "kanarie" not in searched.get_data(as_text=True)
    assert app.test_client().get("/api/v1/security/users/",
                                 headers=api_headers("Admin")).status_code == 404
    cleared = login(cleared_login(app, "admin_cleared", roles=("Admin",)))
    assert "Kanarieqvist" in cleared.get(f"/users/show/{canary['login']}").get_data(as_text=True)
    assert any("Kanarieqvist" in cleared.get(f"/audit-log/show/{pk}").get_data(as_text=True)
               for pk in login_rows)


# --- a protected person's login, wherever a login is named ---------------------------------

def _audit_order(client, **query):
    page = client.get("/audit-log/list/", query_string={"psize_AuditLogView": 100, **query})
    return page.get_data(as_text=True)


def test_the_audit_log_sorted_by_who_sorts_a_protected_login_as_the_mask(app, as_user, login):
    from tests.access_support import CANARY_LOGIN, make_canary

    make_canary(app, as_user, with_login=True)
    admin = login("Admin")
    for direction in ("asc", "desc"):
        page = _audit_order(admin, _oc_AuditLogView="actor", _od_AuditLogView=direction)
        whos = re.findall(r"<td>\s*(Skyddad identitet|servicecenter|intygsgivare1|admin|system)"
                          r"\s*</td>", page)
        assert MASK in whos, direction
        assert whos == sorted(whos, reverse=direction == "desc"), direction  # by the mask
        assert CANARY_LOGIN not in page
    searched = _audit_order(admin, _flt_0_actor="zebulon")
    assert MASK not in searched and CANARY_LOGIN not in searched  # not found by the name


def test_the_user_edit_form_is_refused_uncleared_and_keeps_the_stored_username(
        app, as_user, login):
    from flask_appbuilder.security.sqla.models import User

    from tests.access_support import CANARY_LOGIN, leaked, make_canary

    canary = make_canary(app, as_user, with_login=True)
    refused = login("Admin").get(f"/users/edit/{canary['login']}", follow_redirects=True)
    assert not leaked(refused.get_data(as_text=True)), "the form is not shown"
    assert 'name="username"' not in refused.get_data(as_text=True)
    cleared = login(cleared_login(app, "admin_cleared", roles=("Admin",)))
    form = cleared.get(f"/users/edit/{canary['login']}").get_data(as_text=True)
    assert f'value="{CANARY_LOGIN}"' in form
    fields = dict(re.findall(r'<input[^>]*name="(\w+)"[^>]*value="([^"]*)"', form))
    assert fields["username"] == CANARY_LOGIN and fields["first_name"] != MASK
    role_ids = re.findall(r'<option selected value="(\d+)"', form) or re.findall(
        r'<option value="(\d+)" selected', form)
    saved = cleared.post(f"/users/edit/{canary['login']}", data={
        **{k: v for k, v in fields.items() if k != "csrf_token"},
        "csrf_token": fields.get("csrf_token", ""), "roles": role_ids, "active": "y"})
    assert saved.status_code in (200, 302)
    db.session.expire_all()
    assert db.session.get(User, canary["login"]).username == CANARY_LOGIN


@pytest.mark.both_databases
def test_a_deleted_login_of_a_protected_person_stays_masked_where_it_acted(
        app, as_user, login, dialect):
    """The protected canary's own login (a username not made of their name) updates the Kobe
    register, and Admin then deletes it. What it did stays on the record (its audit rows, the
    Kobe row it last updated, the rows about the login, its deletion among them), and its
    username stays masked there for a reader without clearance: the database keeps whose login
    it was (retired_logins)."""
    from app import accounts
    from app.workflow import kobe
    from tests.access_support import PASSWORD, make_canary

    canary = make_canary(app, as_user)
    username = "zk1977"
    user_id = accounts.create_user(username, PASSWORD, ["Servicecenter"],
                                   hsa_id=CANARY["hsa_id"]).id
    db.session.commit()
    with as_user(username):
        kobe.import_rows([{"hsa_id": CANARY["hsa_id"], "ordinary_card": "active",
                           "reserve_card_order": False}])
    db.session.commit()
    admin = login("Admin")
    assert admin.post(f"/users/delete/{user_id}").status_code == 302
    db.session.expire_all()
    assert app.appbuilder.sm.find_user(username=username) is None
    rows = list(db.session.execute(select(AuditEvent.id).where(
        (AuditEvent.actor_user_id == user_id)
        | ((AuditEvent.entity == "user") & (AuditEvent.entity_id == user_id)))).scalars())
    actions = set(db.session.execute(select(AuditEvent.action).where(
        AuditEvent.id.in_(rows))).scalars())
    assert {"user.delete", "kobe.import"} <= actions, actions
    for path in ("/audit-log/list/?psize_AuditLogView=100",
                 *(f"/audit-log/show/{pk}" for pk in rows)):
        answer = admin.get(path)
        assert answer.status_code == 200, path
        assert username not in answer.get_data(as_text=True), path
    kobe_row = login("Servicecenter").get(f"/registers/kobe/show/{canary['kobe']}")
    assert kobe_row.status_code == 200 and username not in kobe_row.get_data(as_text=True)
    cleared = login(cleared_login(app, "admin_cleared", roles=("Admin",)))
    assert username in cleared.get("/audit-log/list/?psize_AuditLogView=100").get_data(
        as_text=True)


def test_a_deviations_free_text_is_redacted_by_the_protected_persons_name_words(
        app, as_user, login, api_headers):
    from tests.access_support import CANARY, leaked, make_canary

    canary = make_canary(app, as_user, with_login=True)
    admin, page = login("Servicecenter"), f"/deviations/show/{canary['deviation']}"
    shown = admin.get(page).get_data(as_text=True)
    assert "tappade kortet" in shown and "har hittat kortet igen" in shown
    assert not leaked(shown), "the description, the note and its author are redacted"
    one = app.test_client().get(f"/api/v1/deviations/{canary['deviation']}",
                                headers=api_headers("Servicecenter")).get_json()["result"]
    assert one["description"] == f"{MASK} tappade kortet"
    cleared = login(cleared_login(app))
    assert CANARY["name"] in cleared.get(page).get_data(as_text=True)


def test_the_protected_people_are_read_again_when_one_becomes_protected_in_the_request(
        app, as_user):
    from app.access import free_text

    helena = person("Helena")
    with as_user("servicecenter"):
        assert free_text("Helena Håkansson ringde") == "Helena Håkansson ringde"
        helena.protected_identity = True
        db.session.flush()
        assert free_text("Helena Håkansson ringde") == f"{MASK} ringde"
        assert free_text("håkansson ringde, sa HELENA") == f"{MASK} ringde, sa {MASK}"
        assert free_text("Håkanssons bil; Helenas") == "Håkanssons bil; Helenas"  # whole words
        db.session.rollback()
        assert free_text("Helena ringde") == "Helena ringde"


def test_a_protected_persons_own_login_reads_its_own_names(app, as_user, login):
    from tests.access_support import CANARY_LOGIN, make_canary

    make_canary(app, as_user, with_login=True)
    own = login(CANARY_LOGIN).get("/users/userinfo/").get_data(as_text=True)
    assert CANARY_LOGIN in own and "Kanarieqvist" in own


def _identities_in_a_request(app):
    """The protected people as a request of its own finds them, and the statements it sent
    that read them (the protected generation or the people)."""
    from sqlalchemy import event

    from app.access.redaction import protected_identities

    seen = []

    def record(_conn, _cursor, statement, *_args):
        if "protected_generation" in statement or "FROM people" in statement:
            seen.append(statement)

    with app.test_request_context():
        event.listen(db.engine, "before_cursor_execute", record)
        try:
            identities = protected_identities()
        finally:
            event.remove(db.engine, "before_cursor_execute", record)
        db.session.remove()
    return identities, seen


def _outside(sql, **values):
    """A change committed on a connection of its own, as another process would make it."""
    from sqlalchemy import text

    db.session.commit()
    with db.engine.begin() as connection:
        connection.execute(text(sql), values)


@pytest.mark.both_databases
def test_the_protected_people_are_kept_between_requests_until_one_changes(app, as_user):
    """A national register's protected people are read once per process, not per request;
    a change made anywhere (another process, plain SQL) is seen at the next request, because
    the database's triggers change the protected generation's token."""
    from app.access import free_text

    _protect(as_user, "Anna")
    first, _seen = _identities_in_a_request(app)
    again, seen = _identities_in_a_request(app)
    assert again is first, "nothing changed: the people are not read and built again"
    # One statement: the token, with the people joined only when it moved.
    assert len(seen) == 1 and "protected_generation" in seen[0], seen

    helena = person("Helena").id
    _outside("UPDATE people SET protected_identity = :yes WHERE id = :id", yes=True, id=helena)
    with app.test_request_context():
        assert free_text("Helena Håkansson ringde") == f"{MASK} ringde"
    db.session.remove()
    _outside("UPDATE people SET name = 'Helena Holm' WHERE id = :id", id=helena)
    with app.test_request_context():
        assert free_text("Helena Holm ringde") == f"{MASK} ringde"
        assert free_text("Håkansson ringde") == "Håkansson ringde"
    db.session.remove()
    # A login of a protected person renamed: its new username is one of their strings.
    user_id = db.session.execute(select(AccountLink.user_id).where(
        AccountLink.person_id == helena)).scalar()
    assert user_id, "Helena has a login in the demo data"
    _outside("UPDATE ab_user SET username = 'hholm77' WHERE id = :id", id=user_id)
    with app.test_request_context():
        assert free_text("frågade hholm77") == f"frågade {MASK}"
    db.session.remove()
    _outside("UPDATE people SET protected_identity = :no WHERE id = :id", no=False, id=helena)
    with app.test_request_context():
        assert free_text("Helena Holm ringde") == "Helena Holm ringde"


@pytest.mark.postgresql_only
def test_a_process_that_knows_the_protected_people_reads_none_of_them(app, as_user):
    """With the token unchanged the database decides so before it reads one protected person
    (a one-time filter): the check costs one short row, however many people are protected."""
    from sqlalchemy import event

    from app.access.redaction import protected_identities

    _protect(as_user, "Anna")
    _identities_in_a_request(app)
    sent = []

    def record(_conn, _cursor, statement, parameters, *_args):
        if "protected_generation" in statement:
            sent.append((statement, parameters))

    with app.test_request_context():
        event.listen(db.engine, "before_cursor_execute", record)
        try:
            protected_identities()
        finally:
            event.remove(db.engine, "before_cursor_execute", record)
        db.session.remove()
    assert len(sent) == 1, sent
    connection = db.engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sent[0][0], sent[0][1])
        plan = cursor.fetchone()[0][0]["Plan"]
    finally:
        connection.rollback()
        connection.close()

    def nodes(node):
        yield node
        for child in node.get("Plans", ()):
            yield from nodes(child)

    reads = [node for node in nodes(plan) if node.get("Relation Name") == "people"]
    assert reads and all(node["Actual Loops"] == 0 for node in reads), reads


def test_the_fold_table_takes_letters_as_equal_as_the_pattern_does():
    """The quick look-up before the pattern folds letters as Python's re does without case:
    a letter it took as different would let a name through unmasked."""
    import re._casefix as casefix

    from app.access.redaction import folded

    for letter, others in casefix._EXTRA_CASES.items():
        for other in others:
            assert folded(chr(letter)) == folded(chr(other)), (hex(letter), hex(other))
    assert folded("İNGRID") == folded("ingrid")


PROTECTED_ROWS = [
    (1, "Zebulon Kanarieqvist", "197707070707", "zebulon.kanarie@canary.example.se",
     "zebulon.kanarieqvist"),
    (2, "Åsa Öberg-Ståhl", "198502020202", None, None),
    (3, "Ingrid Sıfır", "199001010101", "ingrid@example.se", "isifir"),
]
PIECES = ["Zebulon", "KANARIEQVIST", "kanarieqvists", "19770707-0707", "197707070707",
          "zebulon.kanarie@canary.example.se", "åSA", "ÖBERG-STÅHL", "Öberg", "İngrid", "sifir",
          "SIFIR", "ingrid@example.se", "isifir", "Anna", "kortet", "-", "@", ".", "x"]


@given(st.lists(st.sampled_from(PIECES), max_size=8), st.lists(
    st.sampled_from([" ", "", ", ", "\n", "-", "_", "."]), min_size=8, max_size=8))
def test_the_quick_look_up_never_skips_a_text_the_pattern_would_mask(pieces, separators):
    from app.access.redaction import Identities

    identities = Identities(PROTECTED_ROWS)
    text = "".join(piece + separator for piece, separator in zip(pieces, separators, strict=False))
    assert identities.redact(text, mask="X") == identities.pattern.sub("X", text)


def test_the_user_links_sort_a_protected_login_as_the_mask(app, as_user, login, dialect):
    """Ordered by username, a protected person's login stands where the mask would, not
    where "zebulon.kanarieqvist" would (last): its place must not tell its name."""
    from tests.access_support import CANARY_LOGIN, make_canary

    make_canary(app, as_user, with_login=True)
    page = login("Admin").get("/admin/user-links/").get_data(as_text=True)
    assert CANARY_LOGIN not in page
    rows = re.findall(r"<tr\b[^>]*>(.*?)</tr>", page, re.S)
    masked = [n for n, row in enumerate(rows) if MASK in row]
    assert masked, "the canary's login is listed, masked"
    assert masked[-1] < len(rows) - 1, "it does not stand last, where its username sorts"
