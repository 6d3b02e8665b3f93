"""POST /webhook/ through the test client: status, JSON body and database state (W-1 to W-7)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import time_machine

from parley.conversations.models import BufferedMessage, Conversation, Message, MessageGroup
from tests.payloads import close_conversation, new_conversation, new_message

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sql_path")]

PROBLEM = "application/problem+json"
SEED_CONVERSATION = "6a41b347-8d80-4ce9-84ba-7af66f369f6a"
SEED_MESSAGE = "49108c71-4dca-4af3-9f32-61bc745926e2"

# The literal payloads of seed 000 (and of the README), 2025 timestamps included.
SEED_NEW_CONVERSATION = b"""{
  "type": "NEW_CONVERSATION",
  "timestamp": "2025-06-04T14:20:00Z",
  "data": {
    "id": "6a41b347-8d80-4ce9-84ba-7af66f369f6a"
  }
}"""
SEED_NEW_MESSAGE = b"""{
  "type": "NEW_MESSAGE",
  "timestamp": "2025-06-04T14:20:05Z",
  "data": {
    "id": "49108c71-4dca-4af3-9f32-61bc745926e2",
    "content": "Hi, I'd like information about renting an apartment.",
    "conversation_id": "6a41b347-8d80-4ce9-84ba-7af66f369f6a"
  }
}"""
SEED_CLOSE_CONVERSATION = b"""{
  "type": "CLOSE_CONVERSATION",
  "timestamp": "2025-06-04T14:25:00Z",
  "data": {
    "id": "6a41b347-8d80-4ce9-84ba-7af66f369f6a"
  }
}"""


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:parley:problem:{code}"
    assert body["title"]
    assert body["detail"]
    return body


def test_seed_payloads_work_with_their_2025_timestamps(post_event: Any) -> None:
    created = post_event(SEED_NEW_CONVERSATION)
    assert created.status_code == 201
    body = created.json()
    assert body["id"] == SEED_CONVERSATION
    assert body["status"] == "OPEN"
    assert body["messages"] == []

    accepted = post_event(SEED_NEW_MESSAGE)
    assert accepted.status_code == 202
    assert accepted.json() == {
        "id": SEED_MESSAGE,
        "conversation_id": SEED_CONVERSATION,
        "status": "queued",
    }
    message = Message.objects.get(pk=SEED_MESSAGE)
    assert message.timestamp.isoformat() == "2025-06-04T14:20:05+00:00"
    assert message.type == "INBOUND"
    # The window runs on arrival time: the 2025 message is not overdue.
    group = MessageGroup.objects.get()
    assert group.status == "OPEN"
    assert group.reply_due_at is not None
    assert group.reply_due_at > message.received_at

    closed = post_event(SEED_CLOSE_CONVERSATION)
    assert closed.status_code == 200
    assert closed.json()["status"] == "CLOSED"
    assert [m["id"] for m in closed.json()["messages"]] == [SEED_MESSAGE]
    assert Conversation.objects.get().status == "CLOSED"


def test_new_conversation_twice_is_400_conversation_exists(post_event: Any) -> None:
    conversation_id = uuid.uuid4()
    post_event(new_conversation(conversation_id))
    before = Conversation.objects.get()

    response = post_event(new_conversation(conversation_id, timestamp="2026-01-01T00:00:00Z"))

    assert_problem(response, 400, "conversation_exists")
    after = Conversation.objects.get()
    assert (after.created_at, after.updated_at, after.status) == (
        before.created_at,
        before.updated_at,
        before.status,
    )


def test_new_message_to_a_closed_conversation_is_400_and_stores_nothing(post_event: Any) -> None:
    conversation_id = uuid.uuid4()
    post_event(new_conversation(conversation_id))
    post_event(close_conversation(conversation_id))

    response = post_event(new_message(uuid.uuid4(), conversation_id))

    assert_problem(response, 400, "conversation_closed")
    assert Message.objects.count() == 0
    assert BufferedMessage.objects.count() == 0


def test_new_message_for_an_unknown_conversation_is_buffered(post_event: Any) -> None:
    message_id, conversation_id = uuid.uuid4(), uuid.uuid4()

    response = post_event(new_message(message_id, conversation_id))

    assert response.status_code == 202
    assert response.json() == {
        "id": str(message_id),
        "conversation_id": str(conversation_id),
        "status": "buffered",
    }
    assert BufferedMessage.objects.get().status == "BUFFERED"
    assert not Conversation.objects.exists()


def test_buffered_message_is_listed_in_the_201_of_its_conversation(post_event: Any) -> None:
    message_id, conversation_id = uuid.uuid4(), uuid.uuid4()
    post_event(new_message(message_id, conversation_id, content="early bird"))

    response = post_event(new_conversation(conversation_id))

    assert response.status_code == 201
    assert response.json()["messages"] == [
        {
            "id": str(message_id),
            "type": "INBOUND",
            "content": "early bird",
            "timestamp": "2025-06-04T14:20:05Z",
        }
    ]
    assert BufferedMessage.objects.get().status == "ADOPTED"


def test_expired_buffered_message_redelivered_is_400_buffer_expired(post_event: Any) -> None:
    message_id, conversation_id = uuid.uuid4(), uuid.uuid4()
    with time_machine.travel("2026-03-01T09:00:00Z", tick=False) as clock:
        post_event(new_message(message_id, conversation_id))
        clock.shift(6.1)
        created = post_event(new_conversation(conversation_id))
        response = post_event(new_message(message_id, conversation_id))

    assert created.json()["messages"] == []
    assert_problem(response, 400, "buffer_expired")
    assert not Message.objects.exists()
    assert BufferedMessage.objects.get().status == "EXPIRED"


def test_identical_replay_is_202_and_stores_nothing_new(post_event: Any) -> None:
    conversation_id, message_id = uuid.uuid4(), uuid.uuid4()
    post_event(new_conversation(conversation_id))
    first = post_event(new_message(message_id, conversation_id))

    again = post_event(new_message(message_id, conversation_id))

    assert again.status_code == 202
    assert again.json() == first.json()
    assert Message.objects.count() == 1
    assert MessageGroup.objects.count() == 1


def test_replay_of_a_buffered_message_is_202_buffered(post_event: Any) -> None:
    conversation_id, message_id = uuid.uuid4(), uuid.uuid4()
    post_event(new_message(message_id, conversation_id))

    again = post_event(new_message(message_id, conversation_id))

    assert again.status_code == 202
    assert again.json()["status"] == "buffered"
    assert BufferedMessage.objects.count() == 1


@pytest.mark.parametrize("change", ["content", "conversation_id"])
def test_same_id_with_different_data_is_400_message_id_conflict(
    post_event: Any, change: str
) -> None:
    conversation_id, message_id = uuid.uuid4(), uuid.uuid4()
    post_event(new_conversation(conversation_id))
    post_event(new_message(message_id, conversation_id, content="original"))
    payload = new_message(message_id, conversation_id, content="original")
    payload["data"][change] = "edited" if change == "content" else str(uuid.uuid4())

    response = post_event(payload)

    assert_problem(response, 400, "message_id_conflict")
    assert Message.objects.get().content == "original"


def test_close_returns_200_with_the_closed_conversation(post_event: Any) -> None:
    conversation_id = uuid.uuid4()
    post_event(new_conversation(conversation_id))

    response = post_event(close_conversation(conversation_id))

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["status"]) == (str(conversation_id), "CLOSED")
    # The representation of GET /conversations/{id}/: R-1's five fields first (T-3).
    assert list(body)[:5] == ["id", "status", "created_at", "updated_at", "messages"]
    assert body["close_reason"] == "manual"
    assert body["closed_at"] is not None
    assert Conversation.objects.get().closed_at is not None


def test_close_unknown_is_400_conversation_not_found(post_event: Any) -> None:
    assert_problem(post_event(close_conversation(uuid.uuid4())), 400, "conversation_not_found")


def test_close_twice_is_400_conversation_already_closed(post_event: Any) -> None:
    conversation_id = uuid.uuid4()
    post_event(new_conversation(conversation_id))
    post_event(close_conversation(conversation_id))
    updated_at = Conversation.objects.get().updated_at

    response = post_event(close_conversation(conversation_id))

    assert_problem(response, 400, "conversation_already_closed")
    assert Conversation.objects.get().updated_at == updated_at


def test_close_with_a_pending_group_makes_its_reply_due_now(post_event: Any) -> None:
    conversation_id = uuid.uuid4()
    post_event(new_conversation(conversation_id))
    post_event(new_message(uuid.uuid4(), conversation_id))

    post_event(close_conversation(conversation_id))

    group = MessageGroup.objects.get()
    assert group.status == "CLOSED"
    assert group.reply_due_at == group.closed_at


def test_timestamp_without_offset_is_utc(post_event: Any) -> None:
    conversation_id = uuid.uuid4()
    post_event(new_conversation(conversation_id))
    message = new_message(uuid.uuid4(), conversation_id, timestamp="2025-06-04T14:20:05")

    assert post_event(message).status_code == 202
    assert Message.objects.get().timestamp.isoformat() == "2025-06-04T14:20:05+00:00"


def test_timestamp_with_offset_is_stored_in_utc(post_event: Any) -> None:
    conversation_id = uuid.uuid4()
    post_event(new_conversation(conversation_id))
    message = new_message(uuid.uuid4(), conversation_id, timestamp="2025-06-04T16:20:05+02:00")

    assert post_event(message).status_code == 202
    assert Message.objects.get().timestamp.isoformat() == "2025-06-04T14:20:05+00:00"


def test_unknown_extra_fields_are_ignored(post_event: Any) -> None:
    payload = new_conversation(uuid.uuid4())
    payload["source"] = "whatsapp"
    payload["data"]["channel"] = {"id": 7}
    assert post_event(payload).status_code == 201


@pytest.mark.parametrize(
    "content",
    ["x" * 10_000, "Olá, ação! 你好 🏠", "line one\nline two", "\u200b visible"],
    ids=["max-length", "unicode", "newline", "zero-width-plus-text"],
)
def test_any_unicode_content_up_to_10000_characters_is_stored_intact(
    post_event: Any, content: str
) -> None:
    conversation_id = uuid.uuid4()
    post_event(new_conversation(conversation_id))

    response = post_event(new_message(uuid.uuid4(), conversation_id, content=content))

    assert response.status_code == 202
    assert Message.objects.get().content == content


def _message_with(**data: Any) -> dict[str, Any]:
    payload = new_message(uuid.uuid4(), uuid.uuid4())
    payload["data"].update(data)
    return payload


def _without(key: str) -> dict[str, Any]:
    payload = new_message(uuid.uuid4(), uuid.uuid4())
    del payload["data"][key]
    return payload


MALFORMED: list[tuple[str, Any, str]] = [
    ("not-json", b"{type: NEW_MESSAGE}", "non_field_errors"),
    ("truncated-json", b'{"type": "NEW_MESSAGE", ', "non_field_errors"),
    ("empty-body", b"", "non_field_errors"),
    ("not-utf8", b"\xff\xfe\x00", "non_field_errors"),
    ("array", b"[]", "non_field_errors"),
    ("null", b"null", "non_field_errors"),
    ("string", b'"NEW_MESSAGE"', "non_field_errors"),
    ("number", b"42", "non_field_errors"),
    ("empty-object", {}, "type"),
    (
        "unknown-type",
        {"type": "DELETE_EVERYTHING", "timestamp": "2025-06-04T14:20:00Z", "data": {}},
        "type",
    ),
    ("lowercase-type", {**new_conversation(uuid.uuid4()), "type": "new_conversation"}, "type"),
    ("type-not-string", {**new_conversation(uuid.uuid4()), "type": 1}, "type"),
    ("missing-data", {"type": "NEW_CONVERSATION", "timestamp": "2025-06-04T14:20:00Z"}, "data"),
    ("data-is-list", {**new_conversation(uuid.uuid4()), "data": []}, "data"),
    ("data-is-string", {**new_conversation(uuid.uuid4()), "data": "x"}, "data"),
    (
        "missing-timestamp",
        {"type": "NEW_CONVERSATION", "data": {"id": str(uuid.uuid4())}},
        "timestamp",
    ),
    (
        "timestamp-not-iso",
        {**new_conversation(uuid.uuid4()), "timestamp": "yesterday"},
        "timestamp",
    ),
    ("timestamp-number", {**new_conversation(uuid.uuid4()), "timestamp": 1717510800}, "timestamp"),
    (
        "timestamp-bad-date",
        {**new_conversation(uuid.uuid4()), "timestamp": "2025-02-30T10:00:00Z"},
        "timestamp",
    ),
    (
        "conversation-id-missing",
        {"type": "NEW_CONVERSATION", "timestamp": "2025-06-04T14:20:00Z", "data": {}},
        "data.id",
    ),
    ("conversation-id-not-uuid", new_conversation("not-a-uuid"), "data.id"),
    ("conversation-id-number", {**new_conversation(uuid.uuid4()), "data": {"id": 123}}, "data.id"),
    ("close-id-not-uuid", close_conversation("1234"), "data.id"),
    ("message-id-not-uuid", _message_with(id="abc"), "data.id"),
    ("message-conversation-not-uuid", _message_with(conversation_id="123"), "data.conversation_id"),
    ("message-missing-content", _without("content"), "data.content"),
    ("message-missing-conversation", _without("conversation_id"), "data.conversation_id"),
    ("content-empty", _message_with(content=""), "data.content"),
    ("content-blank", _message_with(content=" \n\t "), "data.content"),
    ("content-number", _message_with(content=5), "data.content"),
    ("content-null", _message_with(content=None), "data.content"),
    ("content-object", _message_with(content={"text": "hi"}), "data.content"),
    ("content-too-long", _message_with(content="x" * 10_001), "data.content"),
    ("content-nul", _message_with(content="a\x00b"), "data.content"),
    (
        "content-lone-surrogate",
        b'{"type":"NEW_MESSAGE","timestamp":"2025-06-04T14:20:05Z","data":{"id":"49108c71-4dca-4af3-9f32-61bc745926e2","conversation_id":"6a41b347-8d80-4ce9-84ba-7af66f369f6a","content":"\\ud800"}}',
        "non_field_errors",
    ),
]


@pytest.mark.parametrize(
    ("body", "field"), [(b, f) for _, b, f in MALFORMED], ids=[n for n, _, _ in MALFORMED]
)
def test_malformed_body_is_400_invalid_payload_naming_the_field(
    post_event: Any, body: Any, field: str
) -> None:
    response = post_event(body)

    problem = assert_problem(response, 400, "invalid_payload")
    assert field in problem["errors"], problem
    assert all(isinstance(m, str) and m for m in problem["errors"][field])
    assert not Conversation.objects.exists()
    assert not Message.objects.exists()
    assert not BufferedMessage.objects.exists()


def test_body_over_the_size_limit_is_413(post_event: Any, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    payload = new_message(uuid.uuid4(), uuid.uuid4(), content="x" * 2000)

    assert_problem(post_event(payload), 413, "payload_too_large")
    assert not BufferedMessage.objects.exists()


def test_default_size_limit_is_256_kib(post_event: Any) -> None:
    body = json.dumps({**new_conversation(uuid.uuid4()), "padding": "x" * (256 * 1024)})
    assert_problem(post_event(body), 413, "payload_too_large")


def test_non_json_media_type_is_415(post_event: Any) -> None:
    response = post_event(json.dumps(new_conversation(uuid.uuid4())), content_type="text/plain")
    assert_problem(response, 415, "unsupported_media_type")
    assert not Conversation.objects.exists()


def test_json_media_type_with_charset_is_accepted(post_event: Any) -> None:
    response = post_event(
        new_conversation(uuid.uuid4()), content_type="application/json; charset=utf-8"
    )
    assert response.status_code == 201


def test_get_on_the_webhook_is_405(client: Any) -> None:
    assert_problem(client.get("/webhook/"), 405, "method_not_allowed")
