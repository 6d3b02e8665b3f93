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
from tests.brokers import (
    BROKERS,
    ConsumerThread,
    applied_order,
    conversation_script,
    transport_of,
    wait_for,
)
from tests.payloads import close_conversation, envelope, new_conversation, new_message

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


@pytest.fixture(autouse=True)
def _short_timings(settings: Any) -> None:
    settings.INTAKE_LEASE_SECONDS = 3.0
    settings.INTAKE_LAG_SECONDS = 0.5


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
        json.dumps(
            {
                "type": "NEW_MESSAGE",
                "timestamp": "2025-06-04T14:20:00Z",
                "data": {"id": str(uuid.uuid4())},
            }
        ).encode(): "invalid_payload",
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


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_a_failure_that_is_not_a_refusal_is_retried_then_a_gave_up_dead_letter(
    broker: dict[str, Any], settings: Any
) -> None:
    """A real failure in the database (a trigger raising) on one event, not a refusal."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the failure is a PostgreSQL trigger")
    settings.INTAKE_MAX_DELIVERIES = 3
    doomed, fine = uuid.uuid4(), uuid.uuid4()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            CREATE FUNCTION parley_test_fail() RETURNS trigger AS $$
            BEGIN
                IF NEW.id = '{doomed}' THEN RAISE EXCEPTION 'disk on fire'; END IF;
                RETURN NEW;
            END $$ LANGUAGE plpgsql;
            CREATE TRIGGER parley_test_fail BEFORE INSERT ON conversations_conversation
                FOR EACH ROW EXECUTE FUNCTION parley_test_fail();
            """
        )
    try:
        transport = transport_of(broker)
        lines = [json.dumps(new_conversation(c)).encode() for c in (doomed, fine)]
        publish_events(lines, transport=transport)
        with ConsumerThread(transport_of(broker), workers=2):
            wait_for(lambda: DeadLetter.objects.filter(code="gave_up").exists(), 30, "gave_up")
            wait_for(lambda: transport_lag_zero(transport), 30, "the queue to drain")
        letter = DeadLetter.objects.get()
        assert letter.event_id == f"NEW_CONVERSATION:{doomed}"
        assert letter.deliveries == 3
        assert "disk on fire" in letter.reason
        assert Conversation.objects.filter(pk=fine).exists()
        assert not InboxEvent.objects.filter(event_id=letter.event_id).exists()
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "DROP TRIGGER parley_test_fail ON conversations_conversation;"
                "DROP FUNCTION parley_test_fail();"
            )
    # Once the cause is gone, the dead letter re-drives.
    from parley.intake.services import dead_letter_redrive

    assert dead_letter_redrive(dead_letter_id=letter.pk).outcome.value == "applied"
    assert Conversation.objects.filter(pk=doomed).exists()


@pytest.mark.parametrize("broker", ["amqp", "redis"], indirect=True)
def test_the_consumer_reports_its_lag(broker: dict[str, Any]) -> None:
    transport = transport_of(broker, partitions=2)
    with transport.connection() as conn:
        channel = conn.channel()
        transport.declare(channel)
        publish_events(
            [json.dumps(new_conversation(uuid.uuid4())).encode()] * 3, transport=transport
        )
        depths = transport.lag(channel, transport.queues())
        channel.close()  # type: ignore[attr-defined]
    assert sum(depths.values()) == 3
    with ConsumerThread(transport_of(broker, partitions=2)):
        wait_for(lambda: InboxEvent.objects.count() == 1, 30, "apply")
        wait_for(
            lambda: all(
                metrics.LAG.labels(source=transport.source, queue=q.name)._value.get() == 0
                for q in transport.queues()
            ),
            10,
            "the lag gauge to fall to 0",
        )


# --- The wire contract of the README, as a producer in another language sees it -------


def close_body(conversation_id: uuid.UUID) -> bytes:
    return json.dumps(close_conversation(conversation_id)).encode()


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_redis_contract_a_hand_made_message_on_the_keys_list(broker: dict[str, Any]) -> None:
    import base64
    import zlib

    import redis

    conversation_id = uuid.uuid4()
    publish_events(
        [json.dumps(new_conversation(conversation_id)).encode()], transport=transport_of(broker)
    )
    key = str(conversation_id)
    partition = zlib.crc32(key.encode()) % 4
    message = {
        "body": base64.b64encode(close_body(conversation_id)).decode(),
        "content-encoding": "binary",
        "content-type": "application/json",
        "headers": {},
        "properties": {
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
            "delivery_info": {
                "exchange": broker["queue"],
                "routing_key": f"{broker['queue']}.{partition}",
            },
        },
    }
    client = redis.Redis.from_url(broker["url"])
    client.lpush(f"{broker['queue']}.{partition}", json.dumps(message))
    client.close()
    with ConsumerThread(transport_of(broker)):
        wait_for(lambda: InboxEvent.objects.count() == 2, 30, "both applied")
    assert Conversation.objects.get(pk=conversation_id).status == "CLOSED"


@pytest.mark.parametrize("broker", ["amqp"], indirect=True)
def test_amqp_contract_a_plain_publish_to_the_exchange(broker: dict[str, Any]) -> None:
    import amqp

    conversation_id = uuid.uuid4()
    transport = transport_of(broker)
    with transport.connection() as conn:  # declares the exchange and the queues
        transport.declare(conn.channel())
    vhost = broker["url"].rsplit("/", 1)[1]
    with amqp.Connection(
        "127.0.0.1:5672", userid="guest", password="guest", virtual_host=vhost
    ) as plain:
        plain.connect()
        channel = plain.channel()
        for body in (
            json.dumps(new_conversation(conversation_id)).encode(),
            close_body(conversation_id),
        ):
            channel.basic_publish(
                amqp.Message(body, content_type="application/json", delivery_mode=2),
                exchange=broker["queue"],
                routing_key=str(conversation_id),
            )
    with ConsumerThread(transport_of(broker)):
        wait_for(lambda: InboxEvent.objects.count() == 2, 30, "both applied")
    assert Conversation.objects.get(pk=conversation_id).status == "CLOSED"


@pytest.mark.parametrize("broker", ["sqs"], indirect=True)
def test_sqs_contract_a_raw_body_with_the_conversation_as_group(broker: dict[str, Any]) -> None:
    import boto3

    conversation_id = uuid.uuid4()
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=broker["queue"])["QueueUrl"]
    for body in (
        json.dumps(new_conversation(conversation_id)).encode(),
        close_body(conversation_id),
    ):
        sqs.send_message(
            QueueUrl=url,
            MessageBody=body.decode(),
            MessageGroupId=str(conversation_id),
            MessageDeduplicationId=str(uuid.uuid4()),
        )
    with ConsumerThread(transport_of(broker)):
        wait_for(lambda: InboxEvent.objects.count() == 2, 30, "both applied")
    assert Conversation.objects.get(pk=conversation_id).status == "CLOSED"
