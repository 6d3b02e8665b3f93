"""Every conversation fact leaves its outbox event, on both implementations of the hot paths."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import time_machine
from django.conf import settings

from parley.conversations import services
from parley.conversations.models import Message, MessageGroup
from parley.outbox.models import OutboxEvent

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sql_path")]

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
EVENT_TIME = datetime(2025, 6, 4, 14, 20, 5, tzinfo=UTC)
DEFAULT_TENANT = settings.DEFAULT_TENANT_ID


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def events() -> list[OutboxEvent]:
    return list(OutboxEvent.objects.order_by("id"))


def test_a_conversation_leaves_one_event_per_fact(clock: time_machine.Traveller) -> None:
    conversation_id, message_id = uuid.uuid4(), uuid.uuid4()
    services.conversation_open(conversation_id=conversation_id)
    clock.shift(1)
    services.message_ingest(
        message_id=message_id, conversation_id=conversation_id, content="hi", timestamp=EVENT_TIME
    )
    clock.shift(5)
    services.due_work_sweep()
    clock.shift(1)
    services.conversation_close(conversation_id=conversation_id)

    opened, received, replied, closed = events()
    group = MessageGroup.objects.get(conversation_id=conversation_id)
    reply = Message.objects.get(conversation_id=conversation_id, type="OUTBOUND")
    subject = str(conversation_id)
    assert (opened.type, opened.occurred_at, opened.subject) == ("conversation.opened", T0, subject)
    assert opened.tenant_id == DEFAULT_TENANT
    assert opened.data == {
        "conversation_id": subject,
        "channel_uuid": None,
        "contact_urn": None,
    }
    assert (received.type, received.subject, received.tenant_id) == (
        "message.received",
        subject,
        DEFAULT_TENANT,
    )
    assert received.occurred_at == datetime(2026, 3, 1, 9, 0, 1, tzinfo=UTC)
    assert received.data == {
        "message_id": str(message_id),
        "conversation_id": subject,
        "group_id": group.pk,
        "reply_due_at": "2026-03-01T09:00:06.000000Z",
        "timestamp": "2025-06-04T14:20:05.000000Z",
    }
    assert (replied.type, replied.tenant_id, replied.occurred_at) == (
        "reply.sent",
        DEFAULT_TENANT,
        datetime(2026, 3, 1, 9, 0, 6, tzinfo=UTC),
    )
    assert replied.data == {
        "message_id": str(reply.pk),
        "conversation_id": subject,
        "group_id": group.pk,
    }
    assert (closed.type, closed.data) == (
        "conversation.closed",
        {"conversation_id": subject, "reason": "manual"},
    )
    assert closed.occurred_at == datetime(2026, 3, 1, 9, 0, 7, tzinfo=UTC)


def test_a_message_that_extends_a_group_reports_the_new_due_time(
    clock: time_machine.Traveller,
) -> None:
    conversation_id = uuid.uuid4()
    services.conversation_open(conversation_id=conversation_id)
    for _ in range(2):
        services.message_ingest(
            message_id=uuid.uuid4(),
            conversation_id=conversation_id,
            content="hi",
            timestamp=EVENT_TIME,
        )
        clock.shift(2)

    first, second = [e.data for e in events() if e.type == "message.received"]

    assert first["group_id"] == second["group_id"]
    assert first["reply_due_at"] == "2026-03-01T09:00:05.000000Z"
    assert second["reply_due_at"] == "2026-03-01T09:00:07.000000Z"


def test_an_adopted_orphan_is_received_when_it_arrived(clock: time_machine.Traveller) -> None:
    conversation_id, message_id = uuid.uuid4(), uuid.uuid4()
    services.message_ingest(
        message_id=message_id, conversation_id=conversation_id, content="hi", timestamp=EVENT_TIME
    )
    assert events() == []  # buffered: not yet a fact of any conversation
    clock.shift(2)
    services.conversation_open(conversation_id=conversation_id)

    opened, received = events()

    assert opened.type == "conversation.opened"
    assert received.type == "message.received"
    assert received.occurred_at == T0  # its arrival, not its adoption
    assert received.data["message_id"] == str(message_id)


def test_a_close_records_its_reason(clock: time_machine.Traveller) -> None:
    conversation_id = uuid.uuid4()
    services.conversation_open(conversation_id=conversation_id)

    conversation = services.conversation_close(conversation_id=conversation_id, reason="idle")

    assert conversation.close_reason == "idle"
    assert events()[-1].data == {"conversation_id": str(conversation_id), "reason": "idle"}


def test_a_refused_message_leaves_no_event() -> None:
    conversation_id = uuid.uuid4()
    services.conversation_open(conversation_id=conversation_id)
    services.conversation_close(conversation_id=conversation_id)
    before = len(events())

    with pytest.raises(Exception, match="closed"):
        services.message_ingest(
            message_id=uuid.uuid4(),
            conversation_id=conversation_id,
            content="hi",
            timestamp=EVENT_TIME,
        )

    assert len(events()) == before


def test_a_conversation_can_belong_to_a_new_tenant() -> None:
    tenant_id, conversation_id = uuid.uuid4(), uuid.uuid4()

    conversation = services.conversation_open(conversation_id=conversation_id, tenant_id=tenant_id)

    assert conversation.tenant_id == tenant_id
    assert conversation.tenant.time_zone == settings.DEFAULT_TENANT_TIME_ZONE
    assert events()[0].tenant_id == tenant_id
