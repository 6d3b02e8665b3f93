"""GET /conversations/{id}/ (R-1 to R-3)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine

from parley.conversations import services
from parley.conversations.models import MessageGroup
from tests.payloads import new_conversation, new_message

pytestmark = pytest.mark.django_db

ISO_UTC_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def test_body_has_the_exact_shape_and_order(client: Any, post_event: Any) -> None:
    conversation_id = uuid.uuid4()
    ids = [uuid.uuid4() for _ in range(3)]
    with time_machine.travel(datetime(2026, 3, 1, 9, 0, tzinfo=UTC), tick=False) as clock:
        post_event(new_conversation(conversation_id))
        # Arrival order differs from event order; the read orders by event time.
        post_event(new_message(ids[0], conversation_id, "third", "2025-06-04T14:20:09Z"))
        clock.shift(1)
        post_event(new_message(ids[1], conversation_id, "first", "2025-06-04T14:20:01Z"))
        clock.shift(1)
        post_event(new_message(ids[2], conversation_id, "second", "2025-06-04T14:20:05Z"))
        clock.shift(5)
        [group_id] = MessageGroup.objects.values_list("pk", flat=True)
        services.group_reply(group_id=group_id)
        response = client.get(f"/conversations/{conversation_id}/")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    # R-1's five fields first, then T-3's additions, in this order.
    assert list(body) == [
        "id",
        "status",
        "created_at",
        "updated_at",
        "messages",
        "tenant_id",
        "channel_uuid",
        "contact_urn",
        "closed_at",
        "close_reason",
        "csat",
        "nps",
        "archived_at",
        "transcript_sha256",
    ]
    assert body["tenant_id"] == "00000000-0000-0000-0000-000000000000"  # the default tenant
    assert body["close_reason"] is None
    assert body["csat"] is None
    assert body["id"] == str(conversation_id)
    assert body["status"] == "OPEN"
    assert body["created_at"] == "2026-03-01T09:00:00Z"
    assert body["updated_at"] == "2026-03-01T09:00:07Z"  # moved by the reply
    assert [(m["content"], m["type"]) for m in body["messages"]] == [
        ("first", "INBOUND"),
        ("second", "INBOUND"),
        ("third", "INBOUND"),
        (f"Received messages:\n{ids[1]}\n{ids[2]}\n{ids[0]}", "OUTBOUND"),
    ]
    for message in body["messages"]:
        assert set(message) == {"id", "type", "content", "timestamp"}
        assert ISO_UTC_Z.match(message["timestamp"]), message["timestamp"]
    assert body["messages"][0] == {
        "id": str(ids[1]),
        "type": "INBOUND",
        "content": "first",
        "timestamp": "2025-06-04T14:20:01Z",
    }


def test_messages_with_the_same_timestamp_keep_arrival_order(client: Any, post_event: Any) -> None:
    conversation_id = uuid.uuid4()
    post_event(new_conversation(conversation_id))
    ids = [uuid.uuid4() for _ in range(5)]
    start = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    for index, message_id in enumerate(ids):
        with time_machine.travel(start + timedelta(milliseconds=index), tick=False):
            post_event(new_message(message_id, conversation_id, f"m{index}"))

    body = client.get(f"/conversations/{conversation_id}/").json()

    assert [m["id"] for m in body["messages"]] == [str(i) for i in ids]


@pytest.mark.parametrize("count", [1, 100])
def test_query_count_is_fixed_whatever_the_number_of_messages(
    client: Any, post_event: Any, django_assert_num_queries: Any, count: int
) -> None:
    conversation_id = uuid.uuid4()
    post_event(new_conversation(conversation_id))
    for _ in range(count):
        post_event(new_message(uuid.uuid4(), conversation_id))

    with django_assert_num_queries(2):  # the conversation, then its messages
        response = client.get(f"/conversations/{conversation_id}/")

    assert len(response.json()["messages"]) == count


@pytest.mark.parametrize(
    "conversation_id",
    [str(uuid.uuid4()), "not-a-uuid", "123", "6a41b347-8d80-4ce9-84ba-7af66f369f6az"],
    ids=["unknown", "malformed", "number", "almost-uuid"],
)
def test_unknown_or_malformed_id_is_404_problem(client: Any, conversation_id: str) -> None:
    response = client.get(f"/conversations/{conversation_id}/")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["code"]) == (404, "not_found")
