"""National scale: every page costs what its rows cost. On PostgreSQL with a few thousand rows
(the benchmark's fill at a small scale): statements per page do not grow with the page size,
no list counts the whole table above the bound, keyset paging returns every row once, the
start page and the sweeps read open rows through their partial indexes, the sweeps write
set-based with the audit chain intact, a manager's deviations are filtered on the unit column
with the unit choices looked up as you type, and one application is at most 15 statements and
one commit."""

import re
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import event, select, text

from app import audit, clock
from app.demo import hsa
from app.extensions import database_url, db
from bench.fill import Sizes, fill
from models import AccountLink, Deviation, Issuance, ReserveCard, Unit

pytestmark = pytest.mark.postgresql_only

SMALL = Sizes.at(0.003)  # 3,000 people and issuances, 300 deviations


@pytest.fixture
def filled(app):
    fill(SMALL)
    db.session.remove()
    return SMALL


class Statements:
    """Every SQL statement and commit on the engine inside the `with` block."""

    def __init__(self):
        self.items, self.commits = [], 0

    def _statement(self, conn, cursor, statement, parameters, context, executemany):
        self.items.append((statement, parameters, executemany))

    def _commit(self, conn):
        self.commits += 1

    @contextmanager
    def watching(self):
        engine = db.engine
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", self._commit)
        try:
            yield self
        finally:
            event.remove(engine, "before_cursor_execute", self._statement)
            event.remove(engine, "commit", self._commit)

    @property
    def count(self):
        return len(self.items)

    def texts(self):
        return [statement for statement, _, _ in self.items]


def watched(run):
    seen = Statements()
    with seen.watching():
        result = run()
    return seen, result


def _ok(answer):
    assert answer.status_code == 200, answer.get_data(as_text=True)[:500]
    return answer


SCREENS = (
    ("/issuances/list/?psize_IssuanceView={size}", "IssuanceView"),
    ("/deviations/list/?psize_DeviationView={size}", "DeviationView"),
    ("/registers/people/list/?psize_PersonView={size}", "PersonView"),
)
APIS = (
    "/api/v1/issuances/?page_size={size}",
    "/api/v1/issuances/?page_size={size}&status=returned&channel=in_person",
    "/api/v1/deviations/?q=(page:0,page_size:{size})",
    "/api/v1/people/?q=(page:0,page_size:{size})",
)


def test_statements_per_list_page_do_not_grow_with_the_page_size(filled, login, api_headers,
                                                                  client):
    screen = login("Servicecenter")
    for pattern, _view in SCREENS:
        counts = []
        for size in (10, 100):
            url = pattern.format(size=size)
            _ok(screen.get(url))  # the first request of a login caches its permissions
            counts.append(watched(lambda url=url: _ok(screen.get(url)))[0].count)
        assert counts[0] == counts[1], (pattern, counts)
    headers = api_headers("Servicecenter")
    for pattern in APIS:
        counts = []
        for size in (10, 100):
            url = pattern.format(size=size)
            _ok(client.get(url, headers=headers))
            seen, answer = watched(lambda url=url: _ok(client.get(url, headers=headers)))
            assert len(answer.get_json()["result"]) == size
            counts.append(seen.count)
        assert counts[0] == counts[1], (pattern, counts)


def _full_counts(statements):
    """count(...) statements that are not bounded by a LIMIT: a scan of the whole table."""
    return [s for s in statements if re.search(r"count\(", s, re.I) and "LIMIT" not in s.upper()]


def test_no_list_counts_the_whole_table_above_the_bound(filled, login, api_headers, client,
                                                        monkeypatch):
    monkeypatch.setattr("views.listing.COUNT_LIMIT", 1000)  # the fill holds 3,000 issuances
    screen = login("Servicecenter")
    seen, answer = watched(lambda: _ok(screen.get(
        "/issuances/list/?_flt_0_status=returned")))
    assert not _full_counts(seen.texts()), _full_counts(seen.texts())
    assert "mer än 1\u00a0000" in answer.get_data(as_text=True)
    # Unfiltered, the total is the planner's estimate (the fill ran ANALYZE).
    page = _ok(screen.get("/issuances/list/")).get_data(as_text=True)
    assert re.search(r"ca \d[\d\u00a0]*", page)

    headers = api_headers("Servicecenter")
    for url in ("/api/v1/issuances/?status=returned", "/api/v1/deviations/",
                "/api/v1/people/?q=(page:0,page_size:5)", "/api/v1/issuances/"):
        seen, answer = watched(lambda url=url: _ok(client.get(url, headers=headers)))
        assert not _full_counts(seen.texts()), (url, _full_counts(seen.texts()))
    people = client.get("/api/v1/people/", headers=headers).get_json()
    assert people["count_exact"] is False and people["count"] > 1000
    issuances = client.get("/api/v1/issuances/?status=returned", headers=headers).get_json()
    assert issuances["count_exact"] is False and issuances["count"] == 1001
    # Below the bound the count is exact.
    blocked = client.get("/api/v1/issuances/?status=blocked", headers=headers).get_json()
    exact = db.session.execute(
        select(db.func.count()).where(Issuance.status == "blocked")).scalar()
    assert blocked["count_exact"] is True and blocked["count"] == exact


def test_keyset_paging_returns_every_row_exactly_once(filled, api_headers, client):
    headers = api_headers("Servicecenter")
    for query, condition in (("", True), ("&status=returned", Issuance.status == "returned")):
        expected = db.session.execute(
            select(Issuance.id).where(condition).order_by(Issuance.id.desc())).scalars().all()
        seen, url, pages = [], f"/api/v1/issuances/?page_size=100{query}", 0
        while url:
            answer = _ok(client.get(url, headers=headers)).get_json()
            seen += [row["id"] for row in answer["result"]]
            url, pages = answer["next"], pages + 1
            assert pages <= len(expected) // 100 + 2
        assert seen == expected
    # `page` still works for small offsets, and agrees with the cursor.
    first = client.get("/api/v1/issuances/?page_size=20", headers=headers).get_json()
    second = client.get("/api/v1/issuances/?page_size=20&page=1", headers=headers).get_json()
    following = client.get(first["next"], headers=headers).get_json()
    assert [r["id"] for r in second["result"]] == [r["id"] for r in following["result"]]


def test_keyset_paging_is_in_the_openapi_document(app, api_headers, client):
    app.config["FAB_API_SWAGGER_UI"] = True
    document = client.get("/api/v1/_openapi", headers=api_headers("Admin")).get_json()
    listing_doc = document["paths"]["/api/v1/issuances/"]["get"]
    assert {"$ref": "#/components/parameters/after"} in listing_doc["parameters"]
    assert document["components"]["parameters"]["after"]["name"] == "after"
    schema = document["components"]["schemas"]["IssuanceListSchema"]["properties"]
    assert {"next", "count_exact"} <= set(schema)


@contextmanager
def _explaining():
    """A connection that explains statements with sequential scans discouraged, as on a
    national-scale table."""
    connection = db.engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute("SET enable_seqscan = off")

        def plan(statement, parameters):
            cursor.execute("EXPLAIN " + statement, parameters)
            return "\n".join(row[0] for row in cursor.fetchall())

        yield plan
    finally:
        connection.rollback()
        connection.close()


def test_start_page_counts_read_open_rows_through_partial_indexes(filled, as_user):
    from app.workflow import queries

    with as_user("Admin") as user:
        seen, counts = watched(lambda: queries.dashboard_counts(user=user, due_soon_days=2))
    assert counts["open_issuances"] == db.session.execute(
        select(db.func.count()).where(queries.open_issuance())).scalar()
    # Every count in one statement, each a subquery reading its own rows (besides it only
    # the login's roles are read, for the deviations it may see).
    counting = [(statement, parameters) for statement, parameters, _ in seen.items
                if "count(*)" in statement]
    assert len(counting) == 1, seen.texts()
    with _explaining() as plan:
        counted = plan(*counting[0])
    assert "Seq Scan" not in counted, counted
    # The counters read open rows only, through a partial index on them (the receipts due
    # within days: the few days' range of the deadline index).
    partial = ("ix_issuances_open", "uq_issuances_open_recipient",
               "ix_issuances_not_returned_valid_until", "uq_issuances_open_card",
               "ix_issuances_receipt_due")
    issuance_scans = [line for line in counted.splitlines() if " on issuances" in line]
    assert issuance_scans and all(any(index in line for index in partial)
                                  for line in issuance_scans), "\n".join(issuance_scans)
    # The cards in stock and to restock, and the open deviations, are many rows at national
    # scale: each count is answered by its index alone, the table's rows are not read.
    many = [line.strip() for line in counted.splitlines()
            if " on reserve_cards" in line or " on deviations" in line]
    assert len(many) == 3 and all(line.startswith("->  Index Only Scan") for line in many), many
    assert "ix_deviations_open_unit" in counted


def test_admins_start_page_makes_only_its_own_counts_in_one_statement(filled, login):
    """Admin sees four counts (failed e-mails, locked accounts, cards out, open deviations):
    one statement makes them, and the counts Admin does not see (cards in stock, receipts,
    approvals) are not made at all."""
    screen = login("Admin")
    _ok(screen.get("/"))  # the first request of a login caches its permissions
    seen, answer = watched(lambda: _ok(screen.get("/")))
    counting = [statement for statement in seen.texts()
                if re.search(r"\b(issuances|deviations|outbox|signin_locks|reserve_cards)\b",
                             statement)]
    assert len(counting) == 1, counting
    assert "reserve_cards" not in counting[0] and "receipts" not in counting[0]
    assert counting[0].count("count(*)") == 4, counting[0]


def test_sweeps_are_set_based_index_served_and_keep_the_audit_chain(filled, monkeypatch):
    from app.workflow import sweeps

    later = clock.now() + timedelta(days=30)  # many deadlines due at once
    seen, result = watched(lambda: sweeps.run_all(later, trigger="test"))
    changes = sum(result.values())
    assert changes >= 60, result
    # Set-based: the statements do not grow with the changes (one row each would be thousands).
    assert seen.count <= 80, (seen.count, changes)
    verified = audit.verify()
    assert verified.ok, verified["breaks"]
    audited = db.session.execute(text(
        "SELECT count(*) FROM audit_events WHERE actor = 'system'")).scalar()
    assert audited >= changes
    with _explaining() as plan:
        plans = [plan(statement, parameters) for statement, parameters, many in seen.items
                 if not many and statement.lstrip().upper().startswith(("SELECT", "UPDATE",
                                                                        "INSERT", "WITH"))]
    scans = [p for p in plans if "Seq Scan on issuances" in p or "Seq Scan on receipts" in p
             or "Seq Scan on people" in p]
    assert not scans, scans
    # The protected people (whose strings each e-mail is redacted of) are read once per
    # batch of e-mails, not once per e-mail, through their partial index.
    protected = [statement for statement in seen.texts() if "protected_identity IS true" in
                 statement and statement.lstrip().upper().startswith("SELECT")]
    assert 0 < len(protected) <= len(sweeps.SWEEPS), len(protected)
    second, again = watched(lambda: sweeps.run_all(later, trigger="test"))
    assert sum(again.values()) == 0, again


def test_managers_deviations_filter_on_their_units_and_units_are_looked_up(filled, login,
                                                                           demo_person):
    chef = login("Chef")
    seen, answer = watched(lambda: _ok(chef.get("/deviations/list/")))
    deviation_queries = [s for s in seen.texts() if "deviations" in s]
    assert deviation_queries
    assert not [s for s in deviation_queries if re.search(r"\bIN \(SELECT", s, re.I)], \
        deviation_queries
    page = answer.get_data(as_text=True)
    assert "rk-lookup" in page
    service = _ok(login("Servicecenter").get("/deviations/list/")).get_data(as_text=True)
    units = db.session.execute(select(db.func.count(Unit.id))).scalar()
    assert units > 5 and len(re.findall(r'<option value=\\?"\d+', service)) <= 1
    # As you type: only matching units, and only the manager's own.
    own = chef.get("/deviations/units?q=akut").get_json()["results"]
    assert [unit["text"] for unit in own] == ["Hallands sjukhus Halmstad, Akutmottagningen"]
    assert chef.get("/deviations/units?q=V%C3%A5rdenhet").get_json()["results"] == []
    found = login("Servicecenter").get("/deviations/units?q=V%C3%A5rdenhet").get_json()
    assert 0 < len(found["results"]) <= 20
    # Filtering on a unit shows that unit's deviations only.
    unit_id = db.session.execute(
        select(Deviation.unit_id).where(Deviation.unit_id.is_not(None)).limit(1)).scalar()
    filtered = _ok(login("Servicecenter").get(f"/deviations/list/?_flt_0_unit={unit_id}"))
    name = db.session.get(Unit, unit_id).name
    assert name in filtered.get_data(as_text=True)


def _page_ids_query(seen, table):
    """The page's ids query of a list screen (the subquery its rows are joined to), with the
    statement's parameters."""
    for statement, parameters, _many in seen.items:
        found = re.search(rf"JOIN \((SELECT {table}\.id AS id .*?)\) AS anon_1 ON",
                          statement, re.S)
        if found:
            return found.group(1), parameters
    raise AssertionError(f"no page ids query of {table}")


def test_list_screens_read_their_page_in_index_order_with_the_shown_relations_only(
        filled, login):
    screen = login("Servicecenter")
    # Filtered on a whole status code: an equality (not ILIKE 'returned%' over every row),
    # read in the list's order from the (status, created_at, id) index.
    seen, answer = watched(lambda: _ok(screen.get("/issuances/list/?_flt_0_status=returned")))
    ids_query, parameters = _page_ids_query(seen, "issuances")
    assert "ILIKE" not in ids_query.upper(), ids_query
    shown = set(re.findall(r'href="/issuances/show/(\d+)"', answer.get_data(as_text=True)))
    assert shown and all(db.session.get(Issuance, int(pk)).status == "returned"
                         for pk in shown)
    with _explaining() as plan:
        ids_plan = plan(ids_query, parameters)
    assert "ix_issuances_status_created_id" in ids_plan, ids_plan
    # A part of a code is still a prefix.
    assert _ok(screen.get("/issuances/list/?_flt_0_status=retur"))
    # The list shows card and recipient: no attesters, extension or receipt with the page.
    texts = " ".join(seen.texts())
    assert not re.search(r"FROM (issuance_attesters|extensions|receipts)\b", texts), texts
    # The people list for a login without clearance is ordered by the shown name (a
    # protected person as the mask): read from the index on that order, not sorted.
    seen, _answer = watched(lambda: _ok(screen.get("/registers/people/list/")))
    ids_query, parameters = _page_ids_query(seen, "people")
    assert "CASE WHEN" in ids_query
    with _explaining() as plan:
        people_plan = plan(ids_query, parameters)
    assert "ix_people_shown_name_id" in people_plan and "Sort" not in people_plan, people_plan


ANNA = hsa("E000000000001")  # a demo person with an active card and no issuance


def _watched_application(client, headers, serial):
    """The statements of one in-person application of ANNA with `serial` (the caller and
    intygsgivare2 attest), asserted stored."""
    body = {"card_serial": serial, "recipient_hsa_id": ANNA, "reason": "forgotten",
            "recipient_present": True, "envelope_unopened": True,
            "second_attester": {"username": "intygsgivare2",
                                "password": "Reservkort-demo-2026"},
            "password": "Reservkort-demo-2026"}
    db.session.remove()
    seen, answer = watched(lambda: client.post("/api/v1/issuances/", json=body,
                                               headers=headers))
    assert answer.status_code == 201, answer.get_json()
    return seen


def test_one_application_is_at_most_15_statements_and_one_commit(app, api_headers, client,
                                                                 in_stock_card):
    serial = in_stock_card().serial
    seen = _watched_application(client, api_headers("Intygsgivare"), serial)
    # The password checks, one per attester (the caller gives theirs again too): each
    # attester's login looked up, its statistics updated (in the application's own
    # transaction, not in a commit of their own).
    check = [t for t in seen.texts()
             if "lower(ab_user.username)" in t or t.startswith("UPDATE ab_user")]
    assert len(check) == 4
    besides = [t for t in seen.texts() if t not in check]
    assert len(besides) <= 15, "\n".join(besides)
    assert seen.commits == 1
    assert db.session.execute(
        select(ReserveCard.status).where(ReserveCard.serial == serial)).scalar() == "issued"


def test_an_attesters_person_is_read_with_their_login(app, api_headers, client, in_stock_card):
    """Each attester's login, its sign-in limits and its person in one statement: no statement
    of its own looks up the person of a login in an application."""
    seen = _watched_application(client, api_headers("Intygsgivare"), in_stock_card().serial)
    checks = [t for t in seen.texts() if "lower(ab_user.username)" in t]
    assert len(checks) == 2 and all("account_links" in t and "people" in t for t in checks)
    own = [t for t in seen.texts() if t not in checks
           and re.search(r"\bFROM people JOIN account_links\b.*\bWHERE account_links\.user_id = ",
                         t, re.S)]
    assert own == [], own


def test_an_application_reads_the_protected_token_with_the_login_not_on_its_own(
        app, api_headers, client, in_stock_card):
    """The e-mails of an application are redacted with the protected people the process
    knows; whether they are still current is read with the caller's login (the protected
    generation's token), not in a statement of its own."""
    headers = api_headers("Intygsgivare")
    client.get("/api/v1/issuances/?page_size=1", headers=headers)  # the process knows them
    seen = _watched_application(client, headers, in_stock_card().serial)
    reading = [t for t in seen.texts() if "protected_generation" in t]
    assert len(reading) == 1 and "session_generations" in reading[0], reading


def test_postgresql_urls_reach_psycopg3_whatever_driver_they_name():
    assert database_url("postgresql+psycopg2://u@h/rk") == "postgresql+psycopg://u@h/rk"
    assert database_url("postgresql://u:p@h:5433/rk") == "postgresql+psycopg://u:p@h:5433/rk"
    assert database_url("postgresql+psycopg://u@h/rk") == "postgresql+psycopg://u@h/rk"
    assert database_url("sqlite:///rk.db") == "sqlite:///rk.db"


def test_a_page_s_statements_are_planned_once_per_connection_not_per_request(app, login):
    # psycopg 3 prepares a statement its connection has run a few times: PostgreSQL then
    # plans the page's queries once, instead of at every request.
    assert db.engine.dialect.driver == "psycopg"
    screen = login("Servicecenter")
    for _ in range(7):
        _ok(screen.get("/deviations/list/"))
    prepared = db.session.execute(
        text("SELECT statement FROM pg_prepared_statements")).scalars().all()
    assert any("FROM deviations" in statement for statement in prepared), prepared
    assert any("FROM ab_user" in statement for statement in prepared), prepared


def test_a_screen_reads_its_user_and_session_generation_in_one_statement(app, login):
    # The session check (app.sessions) and Flask-Login's loader share one load of the user.
    screen = login("Servicecenter")
    _ok(screen.get("/issuances/list/"))
    seen, _answer = watched(lambda: _ok(screen.get("/issuances/list/")))
    login_statements = [s for s in seen.texts()
                        if re.match(r"\s*SELECT\b.*?\bFROM (ab_user|session_generations)\b",
                                    s, re.S)]
    assert len(login_statements) == 1, login_statements
    assert "session_generations" in login_statements[0]


def test_a_screen_reads_its_logins_clearance_with_the_login_not_on_its_own(app, login):
    """The deviation list asks the login's clearance (its order masks protected names); it is
    read in the statement that loads the login, not in a statement of its own."""
    screen = login("Servicecenter")
    _ok(screen.get("/deviations/list/"))
    seen, _answer = watched(lambda: _ok(screen.get("/deviations/list/")))
    reading = [s for s in seen.texts() if "protected_identity_clearance" in s]
    assert len(reading) == 1, reading
    assert re.search(r"\bFROM ab_user\b", reading[0]) and "session_generations" in reading[0]


def test_a_request_that_changes_an_account_link_reads_the_clearance_again(app):
    """The clearance kept for a request is dropped when the request writes an account link,
    so what it shows next follows the link as written."""
    from flask import g

    from app import access, accounts
    from tests.access_support import CLEARED_LOGIN, cleared_login

    cleared_login(app)
    user = app.appbuilder.sm.find_user(username=CLEARED_LOGIN)
    link = db.session.execute(select(AccountLink).where(AccountLink.user_id == user.id)) \
        .scalar_one()
    with app.test_request_context():
        g.user = user
        access.remember_clearance(user.id, True)
        assert access.current_user_cleared() is True
        accounts.link_user(user, link.person, protected_identity_clearance=False)
        assert access.current_user_cleared() is False
    db.session.rollback()
