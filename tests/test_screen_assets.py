"""First impression: static files are cached by the browser (versioned URLs, long max-age), and
the first start prints no FAB warning that looks like a failure."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_static_url_is_versioned_and_served_with_a_long_max_age(login):
    client = login("Servicecenter")
    html = client.get("/").get_data(as_text=True)
    urls = re.findall(r'(?:href|src)="(/static/[^"]+)"', html)
    assert len(urls) > 10
    unversioned = [u for u in urls if not re.search(r"[?&]v=[0-9a-f]{12}\b", u)]
    assert not unversioned, unversioned
    for url in (next(u for u in urls if "reservkort.css" in u),
                next(u for u in urls if "/appbuilder/" in u)):
        response = client.get(url.replace("&amp;", "&"))
        assert response.status_code == 200
        assert "max-age=31536000" in response.headers["Cache-Control"], url


def test_a_changed_file_gets_a_new_url(app):
    from app import assets

    with app.test_request_context():
        first = assets.version("static", "css/reservkort.css")
        app.extensions["reservkort_asset_versions"].clear()
        assert assets.version("static", "css/reservkort.css") == first
        assert assets.version("static", "no/such/file.css") is None


def test_the_first_start_prints_no_fab_warning_that_looks_like_a_failure(tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'first.db'}",
           "RESERVKORT_INSTANCE": str(tmp_path / "instance"), "REDIS_URL": "",
           # The first start is the embedded one (make run): it makes its own secret key.
           "RESERVKORT_EMBEDDED": "1"}
    env.pop("RESERVKORT_CONFIG", None)
    output = ""
    for args in (["db", "upgrade"], ["reservkort", "init"]):
        run = subprocess.run([sys.executable, "-m", "flask", "--app", "app:create_app", *args],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        output += run.stdout + run.stderr
    assert "No user yet created" not in output
    assert "flask fab" not in output


def test_a_pages_static_urls_are_made_once_per_process_as_url_for_makes_them(
        app, login, monkeypatch):
    """A page names some twenty static files; their URLs are made once per process (and root
    the app is served under), the same as url_for makes them, and not again on the next page."""
    from flask import url_for

    from app import assets

    client = login("Servicecenter")
    page = client.get("/deviations/list/").get_data(as_text=True)
    urls = re.findall(r'(?:href|src)="(/static/[^"?]+)\?v=', page)
    assert len(urls) > 15
    with app.test_request_context():
        for url in urls:
            endpoint, filename = (("appbuilder.static", url[len("/static/appbuilder/"):])
                                  if url.startswith("/static/appbuilder/")
                                  else ("static", url[len("/static/"):]))
            assert assets.static_url(endpoint, filename) == url_for(endpoint, filename=filename)
    with app.test_request_context("/", base_url="http://localhost/reservkort/"):
        assert assets.static_url("static", "css/reservkort.css").startswith(
            "/reservkort/static/css/reservkort.css?v=")
    made = []
    monkeypatch.setattr(assets, "url_for", lambda *a, **k: made.append(a) or url_for(*a, **k))
    again = client.get("/deviations/list/").get_data(as_text=True)
    assert re.findall(r'(?:href|src)="(/static/[^"?]+)\?v=', again) == urls
    assert made == []
