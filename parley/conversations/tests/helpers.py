"""Shared steps of the reply tests: conversations, messages, their groups."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from parley.conversations import services
from parley.conversations.models import Message, MessageGroup

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
EVENT_TIME = datetime(2025, 6, 4, 14, 20, 5, tzinfo=UTC)


def open_conversation() -> uuid.UUID:
    conversation_id = uuid.uuid4()
    services.conversation_open(conversation_id=conversation_id)
    return conversation_id


def ingest(
    conversation_id: uuid.UUID, content: str = "hi", *, timestamp: datetime = T0
) -> uuid.UUID:
    message_id = uuid.uuid4()
    services.message_ingest(
        message_id=message_id, conversation_id=conversation_id, content=content, timestamp=timestamp
    )
    return message_id


def groups_of(conversation_id: uuid.UUID) -> list[MessageGroup]:
    return list(MessageGroup.objects.filter(conversation_id=conversation_id).order_by("pk"))


def replies_of(conversation_id: uuid.UUID) -> list[Message]:
    return list(
        Message.objects.filter(conversation_id=conversation_id, type="OUTBOUND").order_by(
            "timestamp"
        )
    )
