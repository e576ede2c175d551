"""What every page carries for accessibility, checked on the HTML without a browser: the page's
language, a skip link to the main content, landmarks without invalid roles, a language menu in
words, and a footer link to the accessibility statement, which anyone can open and which says
how to report a problem."""

import re

import pytest

from tests.conftest import ROLE_LOGINS


@pytest.mark.parametrize("role", list(ROLE_LOGINS))
def test_the_start_page_declares_language_skip_link_landmarks_and_statement(login, role):
    html = login(role).get("/").get_data(as_text=True)
    assert re.search(r'<html lang="sv">', html)
    assert '<a class="rk-skip-link" href="#main">Hoppa till innehållet</a>' in html
    assert re.search(r'<main id="main"[^>]*tabindex="-1"', html)
    assert 'role="header"' not in html
    assert '<nav class="navbar' in html and 'aria-label="Huvudmeny"' in html
    assert '<span class="sr-only">Meny</span>' in html
    # the language menu names the language in words, not only a flag
    assert re.search(r'<span lang="sv">Svenska</span>', html)
    assert 'class="flag ' not in html
    assert 'href="/tillganglighet/">Tillgänglighetsredogörelse</a>' in html


def test_the_english_page_declares_english(login):
    client = login("Servicecenter")
    client.get("/lang/en")
    html = client.get("/").get_data(as_text=True)
    assert '<html lang="en">' in html


def test_the_accessibility_statement_is_open_to_everyone_and_says_how_to_report(client, app):
    html = client.get("/tillganglighet/").get_data(as_text=True)
    assert "<h1>Tillgänglighetsredogörelse för Reservkort</h1>" in html
    assert "Rapportera en brist" in html
    assert f'href="mailto:{app.config["ACCESSIBILITY_CONTACT"]}?subject=' in html
    assert "DIGG" in html
    # the login page links it too
    assert 'href="/tillganglighet/"' in client.get("/login/").get_data(as_text=True)


def test_list_check_boxes_have_names_and_the_table_scrolls_in_a_labelled_region(login):
    html = login("Admin").get("/roles/list/").get_data(as_text=True)
    assert re.search(r'id="check_all"[^>]*\s+aria-label="Markera alla"', html)
    assert re.search(r'<div class="table-responsive rk-scroll" role="region" tabindex="0"\s+'
                     r'aria-label="[^"]+">', html)
