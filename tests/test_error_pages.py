"""Swedish error pages for the browser (403, 404, 429, 500) and JSON {"message"} under /api/."""

import pytest


def test_an_unknown_page_is_a_swedish_404(client):
    answer = client.get("/finns-inte/alls")
    assert answer.status_code == 404
    page = answer.get_data(as_text=True)
    assert "Sidan hittades inte" in page and "Till startsidan" in page
    assert "Not Found" not in page


def test_an_unknown_api_path_is_json(client):
    answer = client.get("/api/v1/finns-inte")
    assert answer.status_code == 404
    assert answer.is_json and answer.get_json()["message"]


def test_a_screen_the_role_may_not_open_is_a_swedish_403(login):
    answer = login("Chef").get("/approval/")
    assert answer.status_code == 403
    page = answer.get_data(as_text=True)
    assert "Åtkomst nekad" in page and "Din roll ger inte tillgång" in page
    assert "Forbidden" not in page


def test_a_locked_login_is_a_swedish_429_page(client):
    for _ in range(5):
        client.post("/login/", data={"username": "chef", "password": "fel-losenord-1"})
    answer = client.post("/login/", data={"username": "chef", "password": "fel-losenord-1"})
    assert answer.status_code == 429
    assert "För många" in answer.get_data(as_text=True)
    assert "Too Many Requests" not in answer.get_data(as_text=True)


class TestServerError:
    @pytest.fixture
    def app_config(self):
        return {"PROPAGATE_EXCEPTIONS": False}

    @pytest.fixture
    def broken(self, app):
        def fail():
            raise RuntimeError("broken on purpose")

        app.add_url_rule("/trasig/", "trasig", fail)
        app.add_url_rule("/api/v1/trasig/", "api_trasig", fail)
        return app

    def test_a_server_error_is_a_swedish_page_without_details(self, broken):
        answer = broken.test_client().get("/trasig/")
        assert answer.status_code == 500
        page = answer.get_data(as_text=True)
        assert "Något gick fel" in page and "broken on purpose" not in page
        assert "Internal Server Error" not in page

    def test_a_server_error_under_api_is_json(self, broken):
        answer = broken.test_client().get("/api/v1/trasig/")
        assert answer.status_code == 500
        assert answer.is_json and "broken" not in answer.get_json()["message"]
