"""The REST API without a valid access token: 401 with a readable {"message": ...}, the same
shape as the API's other errors (never flask_jwt_extended's {"msg": ...} or its 422)."""

from datetime import timedelta

from flask_jwt_extended import create_access_token

PEOPLE = "/api/v1/people/"


def _bearer(token):
    return {"Authorization": f"Bearer {token}"}


def _assert_401_with_message(response):
    assert response.status_code == 401
    body = response.get_json()
    assert "msg" not in body
    assert isinstance(body["message"], str) and body["message"]


def test_without_a_token_the_answer_is_401_with_a_message(client):
    _assert_401_with_message(client.get(PEOPLE))
    _assert_401_with_message(client.post(PEOPLE, json={"name": "x"}))


def test_a_malformed_token_is_401_not_422(client):
    _assert_401_with_message(client.get(PEOPLE, headers=_bearer("not-a-token")))
    _assert_401_with_message(client.get(PEOPLE, headers={"Authorization": "Basic abc"}))


def test_an_expired_token_is_401_with_a_message(app, client, api_headers):
    user = app.appbuilder.sm.find_user(username="servicecenter")
    expired = create_access_token(identity=str(user.id), expires_delta=timedelta(seconds=-60))
    _assert_401_with_message(client.get(PEOPLE, headers=_bearer(expired)))
    # a valid token still gets in
    assert client.get(PEOPLE, headers=api_headers("Servicecenter")).status_code == 200


def test_a_token_of_a_removed_login_is_401(app, client):
    token = create_access_token(identity="999999")
    _assert_401_with_message(client.get(PEOPLE, headers=_bearer(token)))
