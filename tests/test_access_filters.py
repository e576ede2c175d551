"""Search filters never find a protected person for a login without clearance, and do for a
cleared one: every operator Flask-AppBuilder offers on every column that identifies a person,
through the REST API's rison filters and the screens' `_flt_<index>_<column>` arguments.

The columns and operators come from the application's own views (their search columns and
FAB's filter classes for them), not from a hand list; the policy's `search_guard` says which
columns identify a person. The lists' one search box (name, HSA-id, personal number, card
serial) is proven the same way, over every list view that has it.
"""

import pytest
from flask_appbuilder import ModelView
from flask_appbuilder.api import ModelRestApi
from flask_appbuilder.security.sqla.models import User
from sqlalchemy import select

from app.access import search_guard
from app.extensions import db
from models import AuditEvent, KobeRecord, OutboxMessage, Person
from tests.access_support import CANARY, PASSWORD, cleared_login, make_canary, rison


def _guarded_filters(view):
    """[(column, index, filter)] of the view's searches on columns that identify a person."""
    filters = view.datamodel.get_filters(view.search_columns).get_search_filters()
    return [(column, index, flt)
            for column, flts in filters.items() if search_guard(view.datamodel.obj, column)
            is not None for index, flt in enumerate(flts)]


def _targets(canary) -> dict:
    """The rows about the canary, per model that a guarded search can reach (their own login
    on FAB's user screens, whose names and e-mail are copied from the person; the audit rows
    their login wrote, found by "who"; the Kobe row their login last updated)."""
    acted = list(db.session.execute(select(AuditEvent.id).where(
        AuditEvent.actor_user_id == canary["login"])).scalars())
    assert acted
    return {Person: [canary["person"]], OutboxMessage: canary["outbox"], User: [canary["login"]],
            AuditEvent: acted, KobeRecord: [canary["kobe"]]}


# FAB hands these operators the whole list of values (Filters.apply_all), the others one value
# at a time.
LIST_OPERATORS = {"in", "not_in"}


def _candidates(row, flt):
    value = getattr(row, flt.column_name)
    if not value:
        return []
    text = str(value)
    if flt.arg_name in LIST_OPERATORS:
        return [[text], ["zz-no-such-value"]]
    middle = text[1:-1] if len(text) > 2 else text
    return [text, text[:5], text[-5:], middle, "zz-no-such-value"]


def _matching_value(view, flt, pk):
    """A value with which the filter, applied alone, finds row `pk` (or None)."""
    model = view.datamodel.obj
    row = db.session.get(model, pk)
    for value in _candidates(row, flt):
        query = db.session.query(model).filter(model.id == pk)
        try:
            if flt.apply(query, value).count() == 1:
                return value
        except Exception:  # noqa: BLE001  (a value this operator cannot take)
            db.session.rollback()
    return None


def _views(app, kind):
    return [view for view in app.appbuilder.baseviews
            if isinstance(view, kind) and _guarded_filters(view)]


def _web_client(app, username):
    client = app.test_client()
    assert client.post("/login/", data={"username": username, "password": PASSWORD}
                       ).status_code in (302, 303)
    return client


def _token(app, username):
    answer = app.test_client().post("/api/v1/security/login", json={
        "username": username, "password": PASSWORD, "provider": "db"})
    return {"Authorization": f"Bearer {answer.get_json()['access_token']}"}


@pytest.fixture
def canary(app, as_user):
    return make_canary(app, as_user, with_login=True)


def test_the_guarded_searches_cover_the_people_screens_and_api(app):
    web = {type(v).__name__: {c for c, _i, _f in _guarded_filters(v)}
           for v in _views(app, ModelView)}
    api = {type(v).__name__: {c for c, _i, _f in _guarded_filters(v)}
           for v in _views(app, ModelRestApi)}
    assert web["PersonView"] >= {"name", "personal_number", "email"}
    assert api["PersonApi"] >= {"name", "personal_number"}


@pytest.mark.both_databases
def test_api_filters_never_find_a_protected_person_without_clearance(app, canary, dialect):
    cleared = _token(app, cleared_login(app))
    for role in ("servicecenter", "admin"):
        uncleared = _token(app, role)
        checked = 0
        for api in _views(app, ModelRestApi):
            path = f"/api/v1/{api.resource_name}/"
            for pk in _targets(canary)[api.datamodel.obj]:
                for column, _index, flt in _guarded_filters(api):
                    value = _matching_value(api, flt, pk)
                    q = {"q": rison(filters=[{"col": column, "opr": flt.arg_name,
                                              "value": value if value is not None else "x"}],
                                    page_size=100)}
                    answer = app.test_client().get(path, query_string=q, headers=uncleared)
                    assert answer.status_code == 200, (path, q, answer.get_json())
                    assert pk not in answer.get_json()["ids"], (role, path, q)
                    assert CANARY["name"] not in answer.get_data(as_text=True)
                    if value is not None:
                        seen = app.test_client().get(path, query_string=q, headers=cleared)
                        assert pk in seen.get_json()["ids"], (path, q)
                        checked += 1
        assert checked >= 10


@pytest.mark.both_databases
def test_screen_filters_never_find_a_protected_person_without_clearance(app, canary, dialect):
    cleared = _web_client(app, cleared_login(app))
    for role in ("servicecenter", "admin"):
        uncleared = _web_client(app, role)
        checked = 0
        for view in _views(app, ModelView):
            path = f"{view.route_base}/list/"
            for pk in _targets(canary)[view.datamodel.obj]:
                link = f"/show/{pk}\""
                for column, index, flt in _guarded_filters(view):
                    value = _matching_value(view, flt, pk)
                    key = f"_flt_{index}_{column}"
                    query = {key: value if value is not None else "x"}
                    answer = uncleared.get(path, query_string=query)
                    if answer.status_code in (302, 403):
                        continue  # the role may not open this screen at all
                    assert answer.status_code == 200, (path, query)
                    # The search form repeats the value typed; the row must not be there.
                    text = answer.get_data(as_text=True)
                    assert link not in text, (role, path, query)
                    assert CANARY["hsa_id"] not in text, (role, path, query)
                    if value is not None:
                        seen = cleared.get(path, query_string=query).get_data(as_text=True)
                        if type(view).__name__ == "PersonView":
                            assert link in seen, (path, query)
                            checked += 1
        if role == "servicecenter":
            assert checked >= 10


# --- the one search box of the lists ---------------------------------------------------------

def _box_views(app):
    from views.listing import SearchBoxMixin

    return [view for view in app.appbuilder.baseviews if isinstance(view, SearchBoxMixin)]


def _canary_texts(canary) -> list[str]:
    """Everything that identifies the canary, as a person would type it in the box."""
    from models import Issuance

    serial = db.session.get(Issuance, canary["issuance"]).card.serial
    number = CANARY["personal_number"]
    return [CANARY["name"], "Zebulon", "kanarieqvist", CANARY["hsa_id"], CANARY["hsa_id"].lower(),
            number, number.replace("-", ""), number[2:], number[2:].replace("-", ""), serial]


def _box_targets(canary) -> dict:
    from models import Deviation, Issuance, KobeRecord

    return {Person: canary["person"], Issuance: canary["issuance"],
            Deviation: canary["deviation"], KobeRecord: canary["kobe"]}


@pytest.mark.both_databases
def test_the_search_box_never_finds_a_protected_person_without_clearance(app, canary, dialect):
    """Each list with the box, each thing that identifies the canary: a login without
    clearance finds no row about them (the page is that of a text that finds nobody); a
    cleared login finds them in every list."""
    cleared = _web_client(app, cleared_login(app))
    texts = _canary_texts(canary)
    views = _box_views(app)
    assert len(views) >= 4
    for role in ("servicecenter", "admin"):
        uncleared = _web_client(app, role)
        checked = 0
        for view in views:
            path = f"{view.route_base}/list/"
            link = f"/show/{_box_targets(canary)[view.datamodel.obj]}\""
            nobody = uncleared.get(path, query_string={"q": "Zz-nobody-at-all"})
            if nobody.status_code in (302, 403):
                continue  # the role may not open this list at all
            empty = nobody.get_data(as_text=True).count("/show/")
            for text in texts:
                page = uncleared.get(path, query_string={"q": text}).get_data(as_text=True)
                assert link not in page, (role, path, text)
                assert CANARY["hsa_id"] not in page.replace(f'value="{text}"', ""), (
                    role, path, text)
                assert page.count("/show/") == empty, (role, path, text)  # no masked row
                checked += 1
        assert checked >= 2 * len(texts), role
    for view in views:
        path = f"{view.route_base}/list/"
        link = f"/show/{_box_targets(canary)[view.datamodel.obj]}\""
        for text in (CANARY["name"], CANARY["hsa_id"], CANARY["personal_number"][2:]):
            seen = cleared.get(path, query_string={"q": text}).get_data(as_text=True)
            assert link in seen, (path, text)


@pytest.mark.both_databases
def test_the_login_list_search_never_finds_a_protected_persons_login(app, canary, dialect):
    admin = _web_client(app, "admin")
    for text in ("kanarie", CANARY["hsa_id"], CANARY["hsa_id"][-6:]):
        page = admin.get("/admin/user-links/", query_string={"q": text}).get_data(as_text=True)
        assert "kanarie" not in page.replace(f'value="{text}"', ""), text


def _list_views(app):
    from app.access import AccessInterface

    return [view for view in app.appbuilder.baseviews
            if isinstance(view, ModelView) and isinstance(view.datamodel, AccessInterface)
            and view.list_columns]


def _as_shown(value):
    """A value as a cell shows it (a masked person is a stand-in without equality)."""
    return type(value).__name__, str(value)


@pytest.mark.parametrize("who", ["Servicecenter", "cleared"])
def test_every_list_column_reads_as_the_general_rule_shows_it(app, as_user, who):
    """A list page decides once per column how to read it (`cell_reader`); over every list
    view of the application, every column and rows about the protected canary, each value
    is what the policy's general `_get_attr_value` gives, for a login with and without
    clearance. Some columns do take the short way (else the page would gain nothing)."""
    make_canary(app, as_user, with_login=True)
    login = cleared_login(app) if who == "cleared" else "servicecenter"
    short_way = 0
    with as_user(login):
        for view in _list_views(app):
            model, datamodel = view.datamodel.obj, view.datamodel
            rows = db.session.execute(select(model).limit(40)).unique().scalars().all()
            for column in view.list_columns:
                read = datamodel.cell_reader(column)
                short_way += read.__name__ == "read"
                for row in rows:
                    assert _as_shown(read(row)) == _as_shown(
                        datamodel._get_attr_value(row, column)), (view.__class__.__name__,
                                                                  column, row)
    assert short_way >= 10


def test_a_list_page_reads_its_plain_columns_without_the_general_rule(app, as_user, login,
                                                                     monkeypatch):
    """The deviation list's own columns (type, status, the unit and the person) are read the
    short way; the general rule is asked for none of the page's cells."""
    from app.access import AccessInterface

    make_canary(app, as_user)
    asked = []
    general = AccessInterface._get_attr_value

    def counted(self, item, col):
        asked.append(col)
        return general(self, item, col)

    monkeypatch.setattr(AccessInterface, "_get_attr_value", counted)
    page = login("Servicecenter").get("/deviations/list/")
    assert page.status_code == 200 and "/deviations/show/" in page.get_data(as_text=True)
    assert asked == []
