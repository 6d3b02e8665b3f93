"""The admin lists, searches and filters conversations and messages (O-4)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.payloads import new_conversation, new_message

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversation(post_event: Any) -> tuple[uuid.UUID, uuid.UUID]:
    conversation_id, message_id = uuid.uuid4(), uuid.uuid4()
    post_event(new_conversation(conversation_id))
    post_event(new_message(message_id, conversation_id, content="looking for a flat"))
    return conversation_id, message_id


def test_conversations_are_searchable_and_filtered_by_status(
    admin_client: Any, conversation: tuple[uuid.UUID, uuid.UUID]
) -> None:
    conversation_id, _ = conversation
    url = "/admin/conversations/conversation/"

    found = admin_client.get(url, {"q": str(conversation_id), "status__exact": "OPEN"})
    none_closed = admin_client.get(url, {"status__exact": "CLOSED"})

    assert found.status_code == 200
    assert str(conversation_id) in found.content.decode()
    assert none_closed.status_code == 200
    assert str(conversation_id) not in none_closed.content.decode()


def test_messages_are_searchable_by_content_and_filtered_by_type(
    admin_client: Any, conversation: tuple[uuid.UUID, uuid.UUID]
) -> None:
    _, message_id = conversation
    url = "/admin/conversations/message/"

    found = admin_client.get(url, {"q": "flat", "type__exact": "INBOUND"})
    outbound = admin_client.get(url, {"type__exact": "OUTBOUND"})

    assert found.status_code == 200
    assert str(message_id) in found.content.decode()
    assert str(message_id) not in outbound.content.decode()


def test_a_conversation_page_shows_its_messages(
    admin_client: Any, conversation: tuple[uuid.UUID, uuid.UUID]
) -> None:
    conversation_id, _ = conversation
    response = admin_client.get(f"/admin/conversations/conversation/{conversation_id}/change/")
    assert response.status_code == 200
    assert "looking for a flat" in response.content.decode()


def test_the_admin_needs_a_login(client: Any) -> None:
    response = client.get("/admin/conversations/conversation/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
