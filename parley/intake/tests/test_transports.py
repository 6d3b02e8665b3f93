"""The consumer against each real broker, in a thread of the test (Q-4 to Q-7).

RabbitMQ and Redis as they run here, moto's server for SQS FIFO, and kombu's
filesystem transport: the same events, published with ``publish_events``,
are applied once each, in publish order per conversation, and bodies that
cannot apply become dead letters while the consumer goes on.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from parley.conversations.models import Conversation, Message
from parley.intake import metrics
from parley.intake.models import DeadLetter, InboxEvent
from parley.intake.publish import publish_events
from parley.outbox.models import OutboxEvent
from tests.brokers import (  # noqa: F401  (fixtures)
    BROKERS,
    ConsumerThread,
    amqp_vhost,
    broker,
    redis_intake_url,
    sqs_endpoint,
    transport_of,
    wait_for,
)
from tests.payloads import close_conversation, envelope, new_conversation, new_message

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


@pytest.fixture(autouse=True)
def _short_timings(settings: Any) -> None:
    settings.INTAKE_LEASE_SECONDS = 3.0
    settings.INTAKE_LAG_SECONDS = 0.5


def conversation_script(conversations: int, messages: int) -> tuple[list[bytes], dict[str, list[str]]]:
    """Interleaved events of several conversations; and each one's message ids in order."""
    ids = [uuid.uuid4() for _ in range(conversations)]
    lines = [json.dumps(new_conversation(c)).encode() for c in ids]
    order: dict[str, list[str]] = {str(c): [] for c in ids}
    for n in range(messages):
        for c in ids:
            message_id = uuid.uuid4()
            order[str(c)].append(str(message_id))
            lines.append(json.dumps(new_message(message_id, c, f"message {n}")).encode())
    return lines, order


def applied_order(conversation_id: str) -> list[str]:
    """Message ids in the order their effects committed (the outbox's sequence)."""
    return [
        event.data["message_id"]
        for event in OutboxEvent.objects.filter(
            type="message.received", subject=conversation_id
        ).order_by("txid", "id")
    ]


@pytest.mark.parametrize("broker", BROKERS, indirect=True)
def test_published_events_are_applied_once_each_in_order_per_conversation(
    broker: dict[str, Any],
) -> None:
    lines, order = conversation_script(conversations=6, messages=8)
    transport = transport_of(broker)
    summary = publish_events(lines, transport=transport)
    assert summary.published == len(lines)
    assert summary.unparsable == 0
    before = metrics.EVENTS.labels(source=transport.source, outcome="applied")._value.get()
    with ConsumerThread(transport_of(broker), workers=3, batch_size=5):
        wait_for(lambda: InboxEvent.objects.count() == len(lines), 60, "every event applied")
    for conversation_id, message_ids in order.items():
        assert applied_order(conversation_id) == message_ids
    assert Message.objects.count() == 6 * 8
    assert not DeadLetter.objects.exists()
    applied = metrics.EVENTS.labels(source=transport.source, outcome="applied")._value.get()
    assert applied - before == len(lines)


@pytest.mark.parametrize("broker", BROKERS, indirect=True)
def test_poison_and_refused_events_become_dead_letters_and_the_consumer_goes_on(
    broker: dict[str, Any],
) -> None:
    conversation_id = uuid.uuid4()
    huge = json.dumps(new_message(uuid.uuid4(), conversation_id, "x" * 1_000_000)).encode()
    poison = {
        b"{this is not json": "invalid_json",
        b'{"type": "NEW_MESSAGE", "data": "\xff\xfe\xfd"}': "invalid_json",
        b'{"type": "FORGET_ME", "timestamp": "2025-06-04T14:20:00Z", "data": {}}': "unknown_type",
        json.dumps({"type": "NEW_MESSAGE", "timestamp": "2025-06-04T14:20:00Z",
                    "data": {"id": str(uuid.uuid4())}}).encode(): "invalid_payload",
        json.dumps(envelope(channel_uuid="")).encode(): "invalid_payload",
        huge: "invalid_payload",
        json.dumps(close_conversation(uuid.uuid4())).encode(): "conversation_not_found",
    }
    if broker["kind"] == "sqs":
        huge_key = huge
        poison.pop(huge_key)  # SQS takes at most 256 KiB a message
    transport = transport_of(broker, partitions=2)
    good = [json.dumps(new_conversation(conversation_id)).encode()]
    with transport.connection() as conn:
        producer = conn.Producer()
        for raw in poison:
            transport.publish(producer, raw, "poison")
    publish_events(good, transport=transport)
    with ConsumerThread(transport_of(broker, partitions=2), workers=2):
        wait_for(
            lambda: DeadLetter.objects.count() == len(poison) and InboxEvent.objects.count() == 1,
            60,
            "the dead letters and the good event",
        )
    assert Conversation.objects.filter(pk=conversation_id).exists()
    letters = {letter.raw_body(): letter for letter in DeadLetter.objects.all()}
    for raw, code in poison.items():
        assert letters[raw].code == code, raw[:80]
        assert letters[raw].source == broker["kind"]
    assert DeadLetter.objects.filter(body_base64__isnull=False).count() == 1


@pytest.mark.parametrize("broker", BROKERS, indirect=True)
def test_a_redelivered_event_is_a_duplicate_applied_once(broker: dict[str, Any]) -> None:
    payload = json.dumps(envelope(correlation_id="same-event", message_id="m-1")).encode()
    transport = transport_of(broker)
    publish_events([payload, payload, payload], transport=transport)
    with ConsumerThread(transport_of(broker)):
        wait_for(lambda: InboxEvent.objects.filter(event_id="same-event").exists(), 60, "apply")
        wait_for(lambda: transport_lag_zero(transport), 30, "the queue to drain")
    assert Message.objects.count() == 1
    assert InboxEvent.objects.count() == 1
    assert not DeadLetter.objects.exists()


def transport_lag_zero(transport: Any) -> bool:
    with transport.connection() as conn:
        channel = conn.channel()
        try:
            depths = transport.lag(channel, transport.queues())
        finally:
            channel.close()
    return not depths or sum(depths.values()) == 0
