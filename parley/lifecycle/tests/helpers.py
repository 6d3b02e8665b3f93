"""Reading back what the lifecycle did."""

from __future__ import annotations

import uuid
from typing import Any

from parley.conversations.models import Conversation
from parley.outbox.models import OutboxEvent


def closed_events(conversation_id: uuid.UUID) -> list[dict[str, Any]]:
    events = OutboxEvent.objects.filter(type="conversation.closed", subject=str(conversation_id))
    return [e.data for e in events.order_by("id")]


def status(conversation_id: uuid.UUID) -> tuple[str, str | None]:
    c = Conversation.objects.get(pk=conversation_id)
    return c.status, c.close_reason
