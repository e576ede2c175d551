"""Separation of duties: Admin manages users, roles, reference data and the audit log, and does
not do the daily work (approve, receipts, returns, stock, applications, the registered-mail flow,
deviation work). Generated from the role table (app/roles.py) and the application's URL map."""

import re

import pytest

from app.client_input import SWITCHED_OFF_METHODS
from app.roles import MENU, OPERATION_MENUS, OPERATIONS


def _permission(view, method_name):
    function = getattr(view, method_name, None)
    name = getattr(function, "_permission_name", None)
    if name is None:
        return None
    name = (view.method_permission_name or {}).get(method_name, name)
    return name if name.startswith("can_") else f"can_{name}"


def operation_routes(app):
    """(http method, url, view, permission, refusal) of every route of the daily work Admin
    must not reach, from the URL map; the refusal is 403, or 404 for a FAB route switched off
    for everyone (app/client_input.py)."""
    views = {view.blueprint.name: view for view in app.appbuilder.baseviews
             if getattr(view, "blueprint", None) is not None}
    found = []
    for rule in app.url_map.iter_rules():
        blueprint, _, method_name = rule.endpoint.partition(".")
        view = views.get(blueprint)
        if view is None or view.class_permission_name not in OPERATIONS:
            continue
        permission = _permission(view, method_name)
        if permission is None or permission[4:] in OPERATIONS[view.class_permission_name]:
            continue
        url = re.sub(r"<[^>]+>", "1", rule.rule)
        refusal = 404 if method_name in SWITCHED_OFF_METHODS else 403
        for http in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((http, url, view.class_permission_name, permission, refusal))
    return found


def test_admins_rules_fit_where_fab_stores_them():
    from app.roles import admin_role

    for view_regex, permission_regex in admin_role():
        assert len(view_regex) <= 250 and len(permission_regex) <= 100


def test_the_table_names_real_views_and_permissions(app):
    registered = {view.class_permission_name: set(view.base_permissions or [])
                  for view in app.appbuilder.baseviews}
    for view, kept in OPERATIONS.items():
        assert view in registered, view
        assert {f"can_{name}" for name in kept} <= registered[view], view


def test_admin_is_refused_every_action_of_the_daily_work(app, login, api_headers):
    routes = operation_routes(app)
    assert len(routes) > 40, routes  # screens and API of approval, receipts, returns, mail, ...
    browser = login("Admin")
    headers = api_headers("Admin")
    reached = []
    for http, url, view, permission, refusal in routes:
        if url.startswith("/api/"):
            status = app.test_client().open(url, method=http, json={}, headers=headers).status_code
        else:
            status = browser.open(url, method=http, data={}).status_code
        if status != refusal:
            reached.append(f"{http} {url} ({view}.{permission}): {status}")
    assert not reached, "Admin reaches:\n" + "\n".join(reached)


def test_the_role_table_gives_admin_no_operation(app):
    sm = app.appbuilder.sm
    admin = sm.find_role("Admin")
    for view, kept in OPERATIONS.items():
        for permission in ("can_approve", "can_register", "can_return", "can_dispatched",
                           "can_post", "can_receipt", "can_list", "can_note", "can_close"):
            if permission[4:] in kept:
                continue
            assert not sm._has_access_builtin_roles(admin, permission, view), (view, permission)


def test_admin_keeps_users_roles_reference_data_and_the_audit_log(app, login, api_headers):
    browser = login("Admin")
    for url in ("/users/list/", "/roles/list/", "/audit-log/list/", "/registers/people/list/",
                "/registers/units/list/", "/stock/pickup-points/list/",
                "/organisation-types/list/", "/admin/user-links/", "/admin/signin-locks/",
                "/admin/jobs/", "/issuances/list/"):
        assert browser.get(url).status_code == 200, url
    headers = api_headers("Admin")
    for url in ("/api/v1/people/", "/api/v1/units/", "/api/v1/issuances/"):
        assert app.test_client().get(url, headers=headers).status_code == 200, url
    # Users and roles are managed on the screens (and the command line): FAB's security REST
    # API is switched off (FAB_ADD_SECURITY_API = False), for Admin too.
    for url in ("/api/v1/security/users/", "/api/v1/security/roles/"):
        assert app.test_client().get(url, headers=headers).status_code == 404, url


def test_admins_menu_has_no_daily_work(app, api_headers):
    menu = app.test_client().get("/api/v1/menu/", headers=api_headers("Admin")).get_json()
    names = {child["name"] for item in menu["result"] for child in item.get("childs", [])
             if isinstance(child, dict)}
    names |= {item["name"] for item in menu["result"]}
    assert names & {MENU["user_links"], MENU["audit"]}
    assert not names & {MENU[key] for key in OPERATION_MENUS}


class TestAdminMayOperate:
    @pytest.fixture
    def app_config(self):
        return {"ADMIN_MAY_OPERATE": True}

    def test_the_setting_gives_admin_the_daily_work(self, app, login):
        browser = login("Admin")
        for url in ("/approval/", "/receipts/", "/returns/", "/mail-flow/", "/ansokan/"):
            assert browser.get(url).status_code in (200, 302), url
