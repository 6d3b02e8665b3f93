"""Reads. A fixed number of queries whatever the number of messages (R-3)."""

from __future__ import annotations

from uuid import UUID

from django.db.models import Prefetch

from parley.conversations.models import Conversation, Message

# by event timestamp, then by server arrival; the id settles exact ties.
MESSAGE_ORDER = ("timestamp", "received_at", "id")


def conversation_with_messages(*, conversation_id: UUID) -> Conversation | None:
    """The conversation and its messages in display order, in two queries."""
    messages = Message.objects.order_by(*MESSAGE_ORDER).only(
        "id", "conversation_id", "type", "content", "timestamp", "external_id"
    )
    return (
        Conversation.objects.prefetch_related(Prefetch("messages", queryset=messages))
        .filter(pk=conversation_id)
        .first()
    )
