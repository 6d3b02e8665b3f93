"""One run at the real defaults: a 5 s window and a 6 s orphan tolerance (seed 000)."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

import pytest

from parley.conversations.models import Message, MessageGroup
from tests.e2e.conftest import Stack
from tests.payloads import new_conversation, new_message

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def stack(module_stack_factory: Any) -> Stack:
    # No window settings: the code's own defaults apply.
    return module_stack_factory(window=None, tolerance=None)


def test_seed_flows_at_the_real_5_and_6_second_defaults(stack: Stack) -> None:
    """Seed 000 sections 4 and 5, in real time and in parallel:

    - "Hi" at 0 s, "How are you?" at 2 s, "I'd like to rent a property" at 5 s:
      one reply, no earlier than 10 s;
    - abc for conversation 123 at 0 s, conversation 123 at 2 s: adopted;
    - dce for conversation 456 at 0 s, conversation 456 at 7 s: expired.
    """
    chat, conv_123, conv_456 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    burst = [uuid.uuid4() for _ in range(3)]
    abc, dce = uuid.uuid4(), uuid.uuid4()
    # Windows run on the server's arrival time. A message arrives after its
    # request is sent and before its response returns, so each step is timed
    # from the bound that keeps its margin: adoption from the orphan's send,
    # expiry from its response.
    assert stack.post(new_conversation(chat)).status == 201
    start = time.monotonic()
    assert stack.post(new_message(burst[0], chat, "Hi")).body["status"] == "queued"
    abc_sent = time.monotonic()
    assert stack.post(new_message(abc, conv_123, "abc")).body["status"] == "buffered"
    assert stack.post(new_message(dce, conv_456, "dce")).body["status"] == "buffered"
    dce_answered = time.monotonic()

    def at(anchor: float, seconds: float) -> None:
        time.sleep(max(0.0, anchor + seconds - time.monotonic()))

    at(start, 2)
    stack.post(new_message(burst[1], chat, "How are you?"))
    at(abc_sent, 2)
    assert [m["id"] for m in stack.post(new_conversation(conv_123)).body["messages"]] == [str(abc)]
    at(start, 5)
    stack.post(new_message(burst[2], chat, "I'd like to rent a property"))
    last_sent = time.monotonic()
    at(dce_answered, 7)
    assert stack.post(new_conversation(conv_456)).body["messages"] == []
    at(last_sent, 4.5)
    assert not Message.objects.filter(conversation_id=chat, type="OUTBOUND").exists()

    audit = stack.settle(timeout=15, conversation_ids=[chat, conv_123, conv_456])

    assert (audit.lost, audit.duplicated) == (0, 0)
    [reply] = Message.objects.filter(conversation_id=chat, type="OUTBOUND")
    assert reply.content == "Received messages:\n" + "\n".join(map(str, burst))
    group = MessageGroup.objects.get(conversation_id=chat)
    assert group.replied_at is not None
    assert timedelta(seconds=5) <= group.replied_at - group.last_message_at <= timedelta(seconds=6)
    assert Message.objects.filter(conversation_id=conv_123, type="OUTBOUND").count() == 1
    assert not Message.objects.filter(pk=dce).exists()
    assert stack.post(new_message(dce, conv_456, "dce")).body["code"] == "buffer_expired"
