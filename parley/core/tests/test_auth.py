"""The optional bearer token of the read API (S-1)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.test import Client, override_settings

from tests.payloads import new_conversation

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
TOKEN = "t0ken"


@pytest.fixture
def conversation_url(post_event: Any) -> str:
    conversation_id = uuid.uuid4()
    created = post_event(new_conversation(conversation_id))
    assert created.status_code == 201, created.content
    return f"/conversations/{conversation_id}/"


def assert_unauthorized(response: Any) -> None:
    assert response.status_code == 401, response.content
    assert response["Content-Type"] == PROBLEM
    assert response["WWW-Authenticate"].startswith("Bearer")
    body = response.json()
    assert body["status"] == 401
    assert body["code"] == "not_authenticated"
    assert "messages" not in body


@override_settings(API_TOKEN=TOKEN)
def test_without_a_token_the_read_api_answers_401(client: Client, conversation_url: str) -> None:
    assert_unauthorized(client.get(conversation_url))


@override_settings(API_TOKEN=TOKEN)
@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer wrong",
        "Bearer t0ken-and-more",
        "Bearer T0KEN",
        "Bearer ",
        f"Basic {TOKEN}",  # the right secret under another scheme
        TOKEN,
    ],
)
def test_a_wrong_token_answers_401(
    client: Client, conversation_url: str, authorization: str
) -> None:
    assert_unauthorized(client.get(conversation_url, headers={"Authorization": authorization}))


@override_settings(API_TOKEN=TOKEN)
@pytest.mark.parametrize("scheme", ["Bearer", "bearer"])
def test_the_right_token_reads_the_conversation(
    client: Client, conversation_url: str, scheme: str
) -> None:
    response = client.get(conversation_url, headers={"Authorization": f"{scheme} {TOKEN}"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert f"/conversations/{body['id']}/" == conversation_url
    assert body["status"] == "OPEN"
    assert body["messages"] == []


@override_settings(API_TOKEN=TOKEN)
def test_an_unknown_conversation_with_the_right_token_is_404(client: Client) -> None:
    response = client.get(
        f"/conversations/{uuid.uuid4()}/", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


@override_settings(API_TOKEN=TOKEN)
def test_an_unknown_conversation_without_a_token_is_401_not_404(client: Client) -> None:
    """Without the token nothing is revealed, not even whether the id exists."""
    assert_unauthorized(client.get(f"/conversations/{uuid.uuid4()}/"))


@override_settings(API_TOKEN="")
def test_without_api_token_the_read_api_is_open(client: Client, conversation_url: str) -> None:
    response = client.get(conversation_url)
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "OPEN"


@override_settings(API_TOKEN=TOKEN)
def test_the_webhook_does_not_need_the_read_token(post_event: Any) -> None:
    assert post_event(new_conversation(uuid.uuid4())).status_code == 201
