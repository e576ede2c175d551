import pytest


@pytest.mark.both_databases
def test_login_page_is_swedish(client):
    response = client.get("/login/")
    assert response.status_code == 200
    assert "Lösenord" in response.get_data(as_text=True)
