"""The exactly-once ledger catches what it must: the tests and the bench rely on it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import time_machine

from parley.conversations import services
from parley.conversations.audit import exactly_once_audit
from parley.conversations.models import BufferedMessage, Message, MessageGroup

pytestmark = pytest.mark.django_db

EVENT_TIME = datetime(2025, 6, 4, 14, 20, 5, tzinfo=UTC)


def conversation_with_two_messages() -> tuple[uuid.UUID, list[uuid.UUID]]:
    conversation_id = uuid.uuid4()
    services.conversation_open(conversation_id=conversation_id)
    ids = [uuid.uuid4(), uuid.uuid4()]
    for message_id in ids:
        services.message_ingest(
            message_id=message_id,
            conversation_id=conversation_id,
            content="hi",
            timestamp=EVENT_TIME,
        )
    return conversation_id, ids


def test_a_clean_run_has_nothing_lost_or_duplicated() -> None:
    with time_machine.travel(datetime(2026, 3, 1, 9, tzinfo=UTC), tick=False) as clock:
        conversation_id, _ = conversation_with_two_messages()
        clock.shift(5)
        [group] = MessageGroup.objects.all()
        services.group_reply(group_id=group.pk)

    audit = exactly_once_audit(conversation_ids=[conversation_id])

    assert audit.as_dict() == {
        "messages": 2,
        "groups": 1,
        "replies": 1,
        "unanswered_groups": 0,
        "groups_with_extra_replies": 0,
        "messages_unanswered": 0,
        "messages_answered_twice": 0,
        "stranded_orphans": 0,
        "failed_groups": 0,
        "failed_messages": 0,
        "failed_without_reason": 0,
        "lost": 0,
        "duplicated": 0,
    }


def test_an_unanswered_group_and_a_message_missing_from_its_reply_count_as_lost() -> None:
    conversation_id, ids = conversation_with_two_messages()
    assert exactly_once_audit().unanswered_groups == 1  # not replied yet

    [group] = MessageGroup.objects.all()
    Message.objects.create(  # a reply that forgot the second message
        id=uuid.uuid4(),
        conversation_id=conversation_id,
        type="OUTBOUND",
        content=f"Received messages:\n{ids[0]}",
        timestamp=EVENT_TIME,
        reply_to=group,
    )
    MessageGroup.objects.filter(pk=group.pk).update(status="REPLIED", reply_due_at=None)

    audit = exactly_once_audit()
    assert (audit.unanswered_groups, audit.messages_unanswered, audit.lost) == (0, 1, 1)


def test_a_message_listed_in_two_replies_counts_as_duplicated() -> None:
    conversation_id, ids = conversation_with_two_messages()
    services.conversation_close(conversation_id=conversation_id)
    [group] = MessageGroup.objects.all()
    services.group_reply(group_id=group.pk)
    second = services.conversation_open(conversation_id=uuid.uuid4())
    other = MessageGroup.objects.create(
        conversation=second, status="REPLIED", opened_at=EVENT_TIME, last_message_at=EVENT_TIME
    )
    Message.objects.create(
        id=uuid.uuid4(),
        conversation=second,
        type="OUTBOUND",
        content=f"Received messages:\n{ids[0]}",
        timestamp=EVENT_TIME,
        reply_to=other,
    )

    assert exactly_once_audit().messages_answered_twice == 1


def test_a_message_buffered_beside_its_open_conversation_counts_as_stranded() -> None:
    conversation_id = uuid.uuid4()
    services.conversation_open(conversation_id=conversation_id)
    BufferedMessage.objects.create(
        id=uuid.uuid4(), conversation_id=conversation_id, content="lost", timestamp=EVENT_TIME
    )
    assert exactly_once_audit().stranded_orphans == 1
