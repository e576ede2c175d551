"""What a screen page makes once and shows many times: the navbar's menu (kept per process for
each language, site root and set of permissions), a list's search parts (per list and
language) and a list's row buttons (made once with a stand-in for the row's key). Each must
show what FAB's entry-by-entry rendering would."""

import re

from sqlalchemy import select

from app.extensions import db
from models import Deviation, Unit
from tests.conftest import DEMO_PASSWORD

SLOT = "7306190415227461952"  # the list template's stand-in for a row's key


def _menu(page: str) -> str:
    return page.split('<ul class="nav navbar-nav">', 1)[1].split("</ul>\n", 1)[0]


def _entries(page: str) -> list[str]:
    return re.findall(r'<a href="([^"#]+)">', _menu(page))


def test_each_role_sees_its_own_menu_however_they_take_turns(login):
    pages = {}
    for _ in range(2):  # the second round is served from the kept menus
        for role in ("Servicecenter", "Televäxeln", "Chef", "Admin"):
            pages.setdefault(role, []).append(login(role).get("/").get_data(as_text=True))
    menus = {role: [_menu(page) for page in seen] for role, seen in pages.items()}
    for role, (first, again) in menus.items():
        assert first == again, role
    assert len({first for first, _ in menus.values()}) == len(menus)
    assert "/approval/" in "".join(_entries(pages["Televäxeln"][0]))
    assert "/approval/" not in "".join(_entries(pages["Chef"][0]))


def test_a_stored_roles_menu_follows_its_permissions_at_once(app, login):
    from app import accounts

    sm = app.appbuilder.sm
    category = next(item for item in app.appbuilder.menu.get_list() if item.name == "Deviations")
    entry = next(child for child in category.childs if child.name == "Deviation list")
    with app.test_request_context():
        link = entry.get_url()
    role = sm.add_role("Menyprov")
    for name in (category.name, entry.name):
        sm.add_permission_role(role, sm.find_permission_view_menu("menu_access", name))
    accounts.create_user("menyprov", DEMO_PASSWORD, ["Menyprov"])
    screen = login("menyprov")
    assert link in _entries(screen.get("/").get_data(as_text=True))

    sm.del_permission_role(role, sm.find_permission_view_menu("menu_access", entry.name))
    db.session.commit()
    assert link not in _entries(screen.get("/").get_data(as_text=True))


def test_the_menu_speaks_the_language_chosen(login):
    screen = login("Servicecenter")
    swedish = _menu(screen.get("/").get_data(as_text=True))
    screen.get("/lang/en")
    english = _menu(screen.get("/").get_data(as_text=True))
    assert "Avvikelser" in swedish and "Avvikelser" not in english
    assert "Deviations" in english


def test_each_rows_buttons_lead_to_that_row(login, demo_person, as_user):
    from app.workflow import deviations as workflow

    with as_user("Servicecenter"):
        for n in range(3):
            workflow.create("manual", f"Prov {n}", person_hsa_id=demo_person("Anna").hsa_id)
    page = login("Servicecenter").get("/deviations/list/").get_data(as_text=True)
    ids = db.session.execute(select(Deviation.id).order_by(
        Deviation.created_at.desc(), Deviation.id.desc())).scalars().all()
    assert len(ids) >= 3
    assert SLOT not in page
    assert re.findall(r'href="/deviations/show/(\d+)"', page) == [str(pk) for pk in ids[:25]]



def test_a_rows_cells_are_escaped_and_read_in_words(app):
    from markupsafe import Markup

    from app.display import row_cells

    item = {"name": "<script>x</script>", "none": None, "flag": True, "own": 5}
    formatters = {"own": lambda value: Markup(f"<b>{value}</b>")}
    with app.test_request_context():
        cells = row_cells(item, ["name", "none", "flag", "own"], formatters)
    assert cells == ("<td>&lt;script&gt;x&lt;/script&gt;</td><td></td><td>Ja</td>"
                     "<td><b>5</b></td>")


def _search_fields(page: str) -> dict:
    """The search form's fields as the page hands them to its script (column -> HTML)."""
    import json

    found = re.search(r"new AdminFilters\(\s*'#filter_form',\s*(\{.*?\}),\s*(\{.*?\}),",
                      page, re.S)
    return json.loads(found.group(2))


def test_a_lists_search_fields_are_made_once_per_language_but_the_chosen_unit_per_page(
        app, login, monkeypatch):
    from wtforms import SelectField

    unit = db.session.execute(select(Unit.id).order_by(Unit.id)).scalars().first()
    screen = login("Servicecenter")
    first = screen.get("/deviations/list/").get_data(as_text=True)
    made = []
    render = SelectField.__call__
    monkeypatch.setattr(SelectField, "__call__",
                        lambda field, **kw: made.append(field.name) or render(field, **kw))
    again = screen.get(f"/deviations/list/?_flt_0_unit={unit}").get_data(as_text=True)
    assert made == [], "the type and status choices are kept from the first page"
    assert _search_fields(again)["type"] == _search_fields(first)["type"]
    assert "selected" not in _search_fields(first)["unit"]
    assert f'value="{unit}" selected' in _search_fields(again)["unit"]
    screen.get("/lang/en")
    english = _search_fields(screen.get("/deviations/list/").get_data(as_text=True))
    assert english["type"] != _search_fields(first)["type"]
    assert set(made) == {"type", "status"}  # made once more, in English
