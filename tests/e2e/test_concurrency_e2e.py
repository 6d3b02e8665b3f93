"""G-3 and B-4 under concurrency: many threads, several server processes, two task
processes, duplicate deliveries, NEW_CONVERSATION racing its own first messages,
and sweeps answering groups while messages keep arriving."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from parley.conversations.models import BufferedMessage, Conversation, Message
from tests.e2e.conftest import Response, Stack
from tests.payloads import new_conversation, new_message

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CONVERSATIONS = 12
MESSAGES_PER_CONVERSATION = 6
THREADS = 12


@pytest.fixture(scope="module")
def stack(module_stack_factory: Any) -> Stack:
    # The tolerance is long so that every racing message is adopted whatever
    # the machine's load: this test is about exactly-once, not about timing.
    return module_stack_factory(window=1.0, tolerance=60.0, WEB_CONCURRENCY="4")


def test_concurrent_duplicate_and_racing_deliveries_are_answered_exactly_once(
    stack: Stack,
) -> None:
    rng = random.Random(20261121)
    conversation_ids = [uuid.uuid4() for _ in range(CONVERSATIONS)]
    events: list[dict[str, Any]] = []
    for conversation_id in conversation_ids:
        # Each conversation is opened twice (one must get 400) and each
        # message delivered twice; all in random order, so some messages
        # come before, and at the same instant as, their conversation.
        events += [new_conversation(conversation_id)] * 2
        for index in range(MESSAGES_PER_CONVERSATION):
            events += [new_message(uuid.uuid4(), conversation_id, f"m{index}")] * 2
    rng.shuffle(events)

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        responses: list[Response] = list(pool.map(stack.post, events))

    audit = stack.settle(timeout=30, conversation_ids=conversation_ids)

    outcomes = Counter(
        (event["type"], response.status) for event, response in zip(events, responses, strict=True)
    )
    assert outcomes[("NEW_CONVERSATION", 201)] == CONVERSATIONS
    assert outcomes[("NEW_CONVERSATION", 400)] == CONVERSATIONS
    assert outcomes[("NEW_MESSAGE", 202)] == 2 * CONVERSATIONS * MESSAGES_PER_CONVERSATION
    assert sum(outcomes.values()) == len(events)  # no 5xx, nothing else

    accepted = {event["data"]["id"] for event in events if event["type"] == "NEW_MESSAGE"}
    stored = {str(pk) for pk in Message.objects.filter(type="INBOUND").values_list("pk", flat=True)}
    missing = accepted - stored
    assert not missing, list(BufferedMessage.objects.filter(pk__in=missing).values())
    assert stored == accepted
    assert Conversation.objects.filter(pk__in=conversation_ids).count() == CONVERSATIONS
    # B-4: nothing stays buffered beside an open conversation.
    assert not BufferedMessage.objects.filter(status="BUFFERED").exists()
    assert audit.messages == CONVERSATIONS * MESSAGES_PER_CONVERSATION
    assert audit.replies == audit.groups >= CONVERSATIONS
    assert (audit.lost, audit.duplicated) == (0, 0), audit
