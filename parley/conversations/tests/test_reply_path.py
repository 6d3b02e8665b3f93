"""The reply path's raw statements: what the lock's read may miss, and what a late runner leaves."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine

from parley.conversations import services
from parley.conversations.models import Conversation, Message, MessageGroup
from parley.conversations.services import ReplyOutcome
from parley.conversations.services import replies as reply_path

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def open_conversation() -> uuid.UUID:
    conversation_id = uuid.uuid4()
    services.conversation_open(conversation_id=conversation_id)
    return conversation_id


def ingest(conversation_id: uuid.UUID) -> uuid.UUID:
    message_id = uuid.uuid4()
    services.message_ingest(
        message_id=message_id, conversation_id=conversation_id, content="hi", timestamp=T0
    )
    return message_id


def stale_lock(monkeypatch: pytest.MonkeyPatch, status: str, due_at: datetime) -> None:
    """The lock is taken, but its read returns the group as it was before a concurrent writer.

    That is what PostgreSQL returns to a statement that waited for the lock.
    """
    real = reply_path._lock_group

    def lock(group_id: int) -> Any:
        real(group_id)
        return status, due_at

    monkeypatch.setattr(reply_path, "_lock_group", lock)


def test_a_stale_read_does_not_claim_a_group_that_a_message_moved_on(
    clock: time_machine.Traveller, monkeypatch: pytest.MonkeyPatch
) -> None:
    conversation_id = open_conversation()
    ingest(conversation_id)
    [group] = MessageGroup.objects.filter(conversation_id=conversation_id)
    clock.shift(5)
    ingest(conversation_id)  # joins at the edge: due at 10 s now
    stale_lock(monkeypatch, "OPEN", T0 + timedelta(seconds=5))

    result = services.group_reply(group_id=group.pk)

    assert (result.outcome, result.due_at) == (ReplyOutcome.NOT_DUE, T0 + timedelta(seconds=10))
    group.refresh_from_db()
    assert (group.status, group.reply_attempts) == ("OPEN", 0)


def test_a_stale_read_of_a_group_answered_meanwhile_writes_nothing(
    clock: time_machine.Traveller, monkeypatch: pytest.MonkeyPatch
) -> None:
    conversation_id = open_conversation()
    ingest(conversation_id)
    [group] = MessageGroup.objects.filter(conversation_id=conversation_id)
    clock.shift(5)
    assert services.group_reply(group_id=group.pk).outcome is ReplyOutcome.REPLIED
    stale_lock(monkeypatch, "CLOSED", T0 + timedelta(seconds=5))

    assert services.group_reply(group_id=group.pk).outcome is ReplyOutcome.DONE
    assert Message.objects.filter(reply_to=group).count() == 1


def test_a_late_record_leaves_the_conversation_untouched(
    clock: time_machine.Traveller,
) -> None:
    conversation_id = open_conversation()
    ingest(conversation_id)
    [group] = MessageGroup.objects.filter(conversation_id=conversation_id)
    clock.shift(5)
    assert services.group_reply(group_id=group.pk).outcome is ReplyOutcome.REPLIED
    updated_at = Conversation.objects.get(pk=conversation_id).updated_at
    clock.shift(30)

    late = reply_path._group_record_reply(group.pk, "stale", size=1)

    assert late.outcome is ReplyOutcome.DONE
    assert Conversation.objects.get(pk=conversation_id).updated_at == updated_at
    assert Message.objects.filter(reply_to=group).count() == 1


def test_the_reply_lists_the_messages_in_order_and_moves_updated_at(
    clock: time_machine.Traveller,
) -> None:
    conversation_id = open_conversation()
    late = uuid.uuid4()
    services.message_ingest(
        message_id=late, conversation_id=conversation_id, content="b", timestamp=T0
    )
    early = uuid.uuid4()
    services.message_ingest(
        message_id=early,
        conversation_id=conversation_id,
        content="a",
        timestamp=T0 - timedelta(minutes=1),
    )
    [group] = MessageGroup.objects.filter(conversation_id=conversation_id)
    clock.shift(5)

    assert services.group_reply(group_id=group.pk).outcome is ReplyOutcome.REPLIED

    reply = Message.objects.get(reply_to=group)
    assert reply.content == f"Received messages:\n{early}\n{late}"
    assert (reply.conversation_id, reply.type, reply.timestamp) == (
        conversation_id,
        "OUTBOUND",
        T0 + timedelta(seconds=5),
    )
    group.refresh_from_db()
    assert (group.status, group.replied_at, group.reply_due_at) == (
        "REPLIED",
        T0 + timedelta(seconds=5),
        None,
    )
    assert group.closed_at == T0 + timedelta(seconds=5)
    assert Conversation.objects.get(pk=conversation_id).updated_at == T0 + timedelta(seconds=5)


def test_an_unknown_group_is_done() -> None:
    assert services.group_reply(group_id=2**40).outcome is ReplyOutcome.DONE
