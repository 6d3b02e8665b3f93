"""Reads. A fixed number of queries whatever the number of messages (R-3)."""

from __future__ import annotations

from uuid import UUID

from django.db.models import Prefetch, QuerySet

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


def conversations_find(
    *,
    tenant_id: UUID | None = None,
    channel_uuid: str | None = None,
    contact_urn: str | None = None,
    status: str | None = None,
) -> QuerySet[Conversation]:
    """Q-9: conversations matching every filter given, newest first (one query a page)."""
    found = Conversation.objects.order_by("-created_at", "-id")
    if tenant_id is not None:
        found = found.filter(tenant_id=tenant_id)
    if channel_uuid is not None:
        found = found.filter(channel_uuid=channel_uuid)
    if contact_urn is not None:
        found = found.filter(contact_urn=contact_urn)
    if status is not None:
        found = found.filter(status=status)
    return found
