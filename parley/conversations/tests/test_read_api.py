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


# --- GET /conversations/ (Q-9) ---------------------------------------------------------


def test_the_list_filters_by_key_and_status_newest_first(
    client: Any, post_event: Any, django_assert_num_queries: Any
) -> None:
    from parley.conversations.models import Conversation
    from tests.payloads import envelope

    with time_machine.travel(datetime(2026, 3, 1, 9, 0, tzinfo=UTC), tick=False) as clock:
        first = post_event(envelope(contact_urn="tel:1")).json()["conversation_id"]
        services.conversation_close(conversation_id=uuid.UUID(first))
        clock.shift(1)
        second = post_event(envelope(contact_urn="tel:1")).json()["conversation_id"]
        clock.shift(1)
        post_event(envelope(contact_urn="tel:2"))
        clock.shift(1)
        post_event(new_conversation(uuid.uuid4()))
    everything = client.get("/conversations/").json()
    assert everything["count"] == 4
    assert everything["next"] is None
    assert "messages" not in everything["results"][0]
    created = [row["created_at"] for row in everything["results"]]
    assert created == sorted(created, reverse=True)
    mine = client.get("/conversations/?contact_urn=tel:1").json()
    assert [row["id"] for row in mine["results"]] == [second, first]
    assert list(mine["results"][0])[:5] == ["id", "status", "created_at", "updated_at", "tenant_id"]
    open_only = client.get(
        "/conversations/?contact_urn=tel:1&status=OPEN"
        "&tenant_id=1c9d4f1e-7a2b-4c3d-9e8f-0a1b2c3d4e5f"
        "&channel_uuid=8e2b6c1a-4d3f-4b5a-9c7d-6e5f4a3b2c1d"
    ).json()
    assert [row["id"] for row in open_only["results"]] == [second]
    assert client.get(f"/conversations/?tenant_id={uuid.uuid4()}").json()["count"] == 0
    # A fixed number of queries whatever the page holds: the count and the page.
    for _ in range(30):
        post_event(new_conversation(uuid.uuid4()))
    with django_assert_num_queries(2):
        page = client.get("/conversations/?page_size=20")
    assert len(page.json()["results"]) == 20
    assert page.json()["next"].endswith("page=2&page_size=20")
    assert Conversation.objects.count() == 34


def test_the_list_refuses_bad_filters_and_needs_the_token(client: Any, settings: Any) -> None:
    bad = client.get("/conversations/?tenant_id=acme&status=DONE")
    assert bad.status_code == 400
    assert set(bad.json()["errors"]) == {"tenant_id", "status"}
    assert client.get("/conversations/?page=9").status_code == 404
    settings.API_TOKEN = "tok"
    assert client.get("/conversations/").status_code == 401
    assert client.get("/conversations/", headers={"Authorization": "Bearer tok"}).status_code == 200
