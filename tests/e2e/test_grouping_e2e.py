"""Grouping, buffering and replies through real processes, with windows scaled down.

Seed 000's 5 s window and 6 s tolerance are scaled by 0.2 (1.0 s and 1.2 s),
so the seed's timelines keep their shape and margins stay clear of the
machine's scheduling noise.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

import pytest

from parley.conversations.models import Message, MessageGroup
from tests.e2e.conftest import Stack
from tests.payloads import close_conversation, new_conversation, new_message

# Committed data (the processes must see it), flushed after each test.
pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WINDOW = 1.0
TOLERANCE = 1.2
SCALE = 0.2  # of the seed's real-time timelines


@pytest.fixture(scope="module")
def stack(module_stack_factory: Any) -> Stack:
    return module_stack_factory(window=WINDOW, tolerance=TOLERANCE)


def open_conversation(stack: Stack) -> uuid.UUID:
    conversation_id = uuid.uuid4()
    assert stack.post(new_conversation(conversation_id)).status == 201
    return conversation_id


def send(stack: Stack, conversation_id: uuid.UUID, content: str = "hi") -> uuid.UUID:
    message_id = uuid.uuid4()
    response = stack.post(new_message(message_id, conversation_id, content))
    assert response.status == 202, response.body
    return message_id


def replies(conversation_id: uuid.UUID) -> list[str]:
    return list(
        Message.objects.filter(conversation_id=conversation_id, type="OUTBOUND")
        .order_by("timestamp")
        .values_list("content", flat=True)
    )


def expected(*ids: uuid.UUID) -> str:
    return "\n".join(["Received messages:", *map(str, ids)])


def assert_on_time(conversation_id: uuid.UUID) -> None:
    """G-4: each reply lands between the window and the window + 1 s after its last message."""
    for group in MessageGroup.objects.filter(conversation_id=conversation_id, status="REPLIED"):
        assert group.replied_at is not None
        delay = group.replied_at - group.last_message_at
        assert timedelta(seconds=WINDOW) <= delay <= timedelta(seconds=WINDOW + 1), delay


def test_single_message_gets_one_reply_after_the_window(stack: Stack) -> None:
    conversation_id = open_conversation(stack)
    message_id = send(stack, conversation_id)

    audit = stack.settle(timeout=10, conversation_ids=[conversation_id])

    assert replies(conversation_id) == [expected(message_id)]
    assert (audit.lost, audit.duplicated, audit.groups) == (0, 0, 1)
    assert_on_time(conversation_id)
    body = stack.get(f"/conversations/{conversation_id}/").body
    assert [m["type"] for m in body["messages"]] == ["INBOUND", "OUTBOUND"]


def test_a_burst_of_three_gets_one_reply(stack: Stack) -> None:
    conversation_id = open_conversation(stack)
    ids = []
    for content in ("Hi", "How are you?", "I'd like to rent a property"):
        ids.append(send(stack, conversation_id, content))
        time.sleep(0.2)

    stack.settle(timeout=10, conversation_ids=[conversation_id])

    assert replies(conversation_id) == [expected(*ids)]
    assert_on_time(conversation_id)


def test_two_bursts_split_by_a_gap_get_two_replies(stack: Stack) -> None:
    conversation_id = open_conversation(stack)
    first = [send(stack, conversation_id), send(stack, conversation_id)]
    time.sleep(WINDOW + 1.0)
    second = [send(stack, conversation_id)]

    audit = stack.settle(timeout=10, conversation_ids=[conversation_id])

    assert replies(conversation_id) == [expected(*first), expected(*second)]
    assert (audit.groups, audit.replies, audit.lost, audit.duplicated) == (2, 2, 0, 0)
    assert_on_time(conversation_id)


def test_orphan_is_adopted_and_answered(stack: Stack) -> None:
    conversation_id = uuid.uuid4()
    message_id = uuid.uuid4()
    buffered = stack.post(new_message(message_id, conversation_id, "early"))
    time.sleep(0.4)
    created = stack.post(new_conversation(conversation_id))

    assert buffered.body["status"] == "buffered"
    assert created.status == 201
    assert [m["id"] for m in created.body["messages"]] == [str(message_id)]
    stack.settle(timeout=10, conversation_ids=[conversation_id])
    assert replies(conversation_id) == [expected(message_id)]


def test_orphan_expires_and_a_redelivery_is_refused(stack: Stack) -> None:
    conversation_id = uuid.uuid4()
    message_id = uuid.uuid4()
    stack.post(new_message(message_id, conversation_id, "too early"))
    time.sleep(TOLERANCE + 0.6)
    created = stack.post(new_conversation(conversation_id))
    again = stack.post(new_message(message_id, conversation_id, "too early"))

    assert created.body["messages"] == []
    assert (again.status, again.body["code"]) == (400, "buffer_expired")
    time.sleep(WINDOW + 0.5)
    assert replies(conversation_id) == []
    assert not Message.objects.filter(pk=message_id).exists()


def test_close_answers_a_pending_group_at_once(stack: Stack) -> None:
    conversation_id = open_conversation(stack)
    message_id = send(stack, conversation_id)
    closed_at = time.monotonic()
    assert stack.post(close_conversation(conversation_id)).status == 200

    audit = stack.settle(timeout=10, conversation_ids=[conversation_id])

    assert time.monotonic() - closed_at < WINDOW  # not the window: at once
    assert replies(conversation_id) == [expected(message_id)]
    assert audit.lost == 0
    assert stack.post(new_message(uuid.uuid4(), conversation_id)).status == 400


def test_seed_timeline_scaled_down(stack: Stack) -> None:
    """Seed 000 section 4 at 0.2x: T=0 abc→123, T=2 conv 123, T=7 dce→456, T=15 conv 456."""
    conv_123, conv_456 = uuid.uuid4(), uuid.uuid4()
    abc, dce = uuid.uuid4(), uuid.uuid4()
    start = time.monotonic()

    def at(seconds: float) -> None:
        time.sleep(max(0.0, start + seconds * SCALE - time.monotonic()))

    stack.post(new_message(abc, conv_123, "abc"))
    at(2)
    assert [m["id"] for m in stack.post(new_conversation(conv_123)).body["messages"]] == [str(abc)]
    at(7)
    stack.post(new_message(dce, conv_456, "dce"))
    at(15)
    assert stack.post(new_conversation(conv_456)).body["messages"] == []

    stack.settle(timeout=10, conversation_ids=[conv_123, conv_456])
    assert replies(conv_123) == [expected(abc)]
    assert replies(conv_456) == []
