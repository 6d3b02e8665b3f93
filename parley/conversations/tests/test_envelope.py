"""The seed's envelope on POST /webhook/ (Q-2): message.received and message.sent."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from django.db import connection

from parley.conversations import services
from parley.conversations.models import Conversation, Message, MessageGroup
from parley.conversations.services.envelope import envelope_message_store
from parley.core.errors import InvalidPayload
from parley.outbox.models import OutboxEvent
from parley.webhooks.schemas import parse_event
from tests.payloads import envelope

pytestmark = pytest.mark.django_db

PROJECT = uuid.UUID("1c9d4f1e-7a2b-4c3d-9e8f-0a1b2c3d4e5f")


@pytest.mark.usefixtures("sql_path")
def test_message_received_opens_a_conversation_for_the_key_and_is_grouped(
    post_event: Any,
) -> None:
    response = post_event(envelope(message_id="wamid.1", text="Hello"))
    assert response.status_code == 202
    body = response.json()
    conversation = Conversation.objects.get(pk=body["conversation_id"])
    assert body["status"] == "queued"
    assert body["id"] == str(uuid.uuid5(PROJECT, "wamid.1"))
    assert (conversation.tenant_id, conversation.status) == (PROJECT, "OPEN")
    assert conversation.contact_urn == "whatsapp:5511999990000"
    message = Message.objects.get(pk=body["id"])
    assert (message.type, message.content, message.external_id) == ("INBOUND", "Hello", "wamid.1")
    assert message.group is not None
    assert message.timestamp.isoformat() == "2025-06-04T14:20:05+00:00"
    # A second message of the same key joins the same conversation and group.
    second = post_event(envelope(message_id="wamid.2", text="Anyone?")).json()
    assert second["conversation_id"] == body["conversation_id"]
    assert MessageGroup.objects.filter(conversation=conversation).count() == 1
    opened = OutboxEvent.objects.get(type="conversation.opened", subject=str(conversation.pk))
    assert opened.data["channel_uuid"] == conversation.channel_uuid
    assert opened.data["contact_urn"] == "whatsapp:5511999990000"
    assert OutboxEvent.objects.filter(type="message.received").count() == 2


@pytest.mark.usefixtures("sql_path")
def test_a_replay_answers_the_same_and_stores_nothing(post_event: Any) -> None:
    payload = envelope(message_id="wamid.9", text="Once")
    first = post_event(payload)
    again = post_event({**payload, "correlation_id": str(uuid.uuid4())})
    assert again.status_code == 202
    assert again.json() == first.json()
    assert Message.objects.count() == 1
    conflict = post_event(envelope(message_id="wamid.9", text="Other"))
    assert conflict.status_code == 400
    assert conflict.json()["code"] == "message_id_conflict"


def test_a_uuid_message_id_is_kept_as_is(post_event: Any) -> None:
    message_id = str(uuid.uuid4())
    body = post_event(envelope(message_id=message_id)).json()
    assert body["id"] == message_id
    assert Message.objects.get(pk=message_id).external_id is None


def test_message_sent_is_an_agent_message_never_answered(post_event: Any) -> None:
    received = post_event(envelope(message_id="in-1")).json()
    sent = post_event(envelope("message.sent", message_id="out-1", text="Agent here"))
    assert sent.status_code == 202
    assert sent.json()["status"] == "stored"
    assert sent.json()["conversation_id"] == received["conversation_id"]
    message = Message.objects.get(external_id="out-1")
    assert (message.type, message.reply_to, message.group) == ("OUTBOUND", None, None)
    event = OutboxEvent.objects.get(type="message.sent")
    assert event.data["message_id"] == str(message.pk)
    assert event.data["external_id"] == "out-1"
    # The group of the received message still owes its reply: the agent's is not one.
    group = MessageGroup.objects.get(conversation_id=received["conversation_id"])
    assert group.status == "OPEN"
    assert not hasattr(group, "reply") or group.reply is None


def test_message_sent_alone_opens_the_conversation_too(post_event: Any) -> None:
    response = post_event(envelope("message.sent", contact_urn="tg:42"))
    assert response.status_code == 202
    assert Conversation.objects.get(contact_urn="tg:42").status == "OPEN"
    assert MessageGroup.objects.count() == 0


def test_after_close_the_next_message_opens_a_new_conversation(post_event: Any) -> None:
    first = post_event(envelope()).json()["conversation_id"]
    services.conversation_close(conversation_id=uuid.UUID(first))
    second = post_event(envelope()).json()["conversation_id"]
    assert second != first
    assert Conversation.objects.filter(contact_urn="whatsapp:5511999990000").count() == 2


def test_keys_differ_by_tenant_channel_and_contact(post_event: Any) -> None:
    ids = {
        post_event(envelope()).json()["conversation_id"],
        post_event(envelope(project_uuid=uuid.uuid4())).json()["conversation_id"],
        post_event(envelope(channel_uuid="other-channel")).json()["conversation_id"],
        post_event(envelope(contact_urn="whatsapp:1")).json()["conversation_id"],
    }
    assert len(ids) == 4


def test_empty_created_at_is_the_arrival_time_and_no_offset_is_utc(post_event: Any) -> None:
    before = Message.objects.count()
    empty = post_event(envelope(created_at="")).json()
    message = Message.objects.get(pk=empty["id"])
    assert message.timestamp == message.received_at
    naive = post_event(envelope(created_at="2025-06-04T10:00:00")).json()
    assert Message.objects.get(pk=naive["id"]).timestamp.isoformat() == "2025-06-04T10:00:00+00:00"
    offset = post_event(envelope(created_at="2025-06-04T10:00:00-03:00")).json()
    assert Message.objects.get(pk=offset["id"]).timestamp.isoformat() == "2025-06-04T13:00:00+00:00"
    assert Message.objects.count() == before + 3


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: p["data"].pop("channel_uuid"), "data.channel_uuid"),
        (lambda p: p["data"].pop("contact_urn"), "data.contact_urn"),
        (lambda p: p["data"].pop("project_uuid"), "data.project_uuid"),
        (lambda p: p["data"].update(project_uuid="acme"), "data.project_uuid"),
        (lambda p: p["data"].update(channel_uuid="  "), "data.channel_uuid"),
        (lambda p: p["data"].pop("message"), "data.message"),
        (lambda p: p["data"]["message"].pop("id"), "data.message.id"),
        (lambda p: p["data"]["message"].pop("created_at"), "data.message.created_at"),
        (lambda p: p["data"]["message"].update(created_at="yesterday"), "data.message.created_at"),
        (lambda p: p["data"]["message"].update(text="   "), "data.message.text"),
        (lambda p: p.pop("correlation_id"), "correlation_id"),
        (lambda p: p.update(event_type="message.deleted"), "event_type"),
    ],
)
def test_missing_or_bad_fields_are_refused_visibly(
    post_event: Any, mutate: Any, field: str
) -> None:
    payload = envelope()
    mutate(payload)
    response = post_event(payload)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "invalid_payload"
    assert list(response.json()["errors"]) == [field]
    assert Message.objects.count() == 0
    assert Conversation.objects.count() == 0


def test_a_body_with_neither_type_nor_event_type_names_both() -> None:
    with pytest.raises(InvalidPayload) as caught:
        parse_event(b'{"data": {}}')
    assert caught.value.errors is not None
    assert "event_type" in str(caught.value.errors["type"])


@pytest.mark.django_db(transaction=True)
def test_concurrent_events_of_one_key_create_one_open_conversation() -> None:
    """Q-2 on PostgreSQL: threads race to open the key's conversation; the index decides."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises every writer itself")
    threads, results, errors = [], [], []
    barrier = threading.Barrier(8)

    def deliver(index: int) -> None:
        from django.db import connection as thread_connection

        try:
            barrier.wait()
            stored = envelope_message_store(
                direction="received" if index % 2 else "sent",
                tenant_id=PROJECT,
                channel_uuid="race-channel",
                contact_urn="whatsapp:race",
                producer_id=f"m{index}",
                content=f"message {index}",
                timestamp=None,
            )
            results.append(stored.conversation_id)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            thread_connection.close()

    for index in range(8):
        threads.append(threading.Thread(target=deliver, args=(index,)))
        threads[-1].start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(set(results)) == 1
    assert Conversation.objects.filter(contact_urn="whatsapp:race", status="OPEN").count() == 1
    assert Message.objects.filter(conversation_id=results[0]).count() == 8
    assert OutboxEvent.objects.filter(type="conversation.opened").count() == 1
