"""B-4 and G-3 races at the service level: two threads, two database connections,
released at the same instant, many times over."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection

from parley.conversations import services
from parley.conversations.models import BufferedMessage, Message, MessageGroup

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("sql_path")]

ROUNDS = 40
EVENT_TIME = datetime(2025, 6, 4, 14, 20, 5, tzinfo=UTC)


def race(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads released together; return results or exceptions."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[index] = call()
        except Exception as exc:  # reported to the test, which asserts on it
            results[index] = exc
        finally:
            connection.close()  # each thread has its own connection

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_a_message_and_its_conversation_at_the_same_instant_never_strand_the_message() -> None:
    for _ in range(ROUNDS):
        conversation_id, message_id = uuid.uuid4(), uuid.uuid4()

        def ingest(c: uuid.UUID = conversation_id, m: uuid.UUID = message_id) -> Any:
            return services.message_ingest(
                message_id=m, conversation_id=c, content="hi", timestamp=EVENT_TIME
            )

        def open_conversation(c: uuid.UUID = conversation_id) -> Any:
            return services.conversation_open(conversation_id=c)

        ingested, opened = race(ingest, open_conversation)
        assert not isinstance(ingested, Exception), ingested
        assert not isinstance(opened, Exception), opened
        # Whichever won, the message is in its conversation, in one group.
        message = Message.objects.get(pk=message_id)
        assert message.conversation_id == conversation_id
        assert message.group is not None
        assert not BufferedMessage.objects.filter(pk=message_id, status="BUFFERED").exists()


def test_duplicate_deliveries_at_the_same_instant_store_one_message() -> None:
    for _ in range(ROUNDS):
        conversation_id, message_id = uuid.uuid4(), uuid.uuid4()
        services.conversation_open(conversation_id=conversation_id)

        def deliver(c: uuid.UUID = conversation_id, m: uuid.UUID = message_id) -> Any:
            return services.message_ingest(
                message_id=m, conversation_id=c, content="hi", timestamp=EVENT_TIME
            )

        first, second = race(deliver, deliver)

        assert not isinstance(first, Exception), first
        assert not isinstance(second, Exception), second
        assert sorted([first.replay, second.replay]) == [False, True]
        assert Message.objects.filter(pk=message_id).count() == 1
        assert MessageGroup.objects.filter(conversation_id=conversation_id).count() == 1
