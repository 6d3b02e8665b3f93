"""CLOSE_CONVERSATION (W-6): close the conversation, answer its pending group at once (G-5)."""

from __future__ import annotations

from uuid import UUID

import structlog
from django.db import transaction
from django.utils import timezone
from structlog.contextvars import bind_contextvars

from parley.conversations import events
from parley.conversations.models import Conversation, MessageGroup
from parley.conversations.services.groups import group_close, schedule_reply
from parley.core.errors import (
    ConversationAlreadyClosed,
    ConversationNotFound,
)

log = structlog.get_logger(__name__)


def conversation_close(
    *, conversation_id: UUID, reason: str = Conversation.CloseReason.MANUAL
) -> Conversation:
    """CLOSE_CONVERSATION (W-6), or an automatic close (T-1) with its ``reason``.

    A group still open is answered at once (G-5).
    """
    bind_contextvars(conversation_id=str(conversation_id))
    with transaction.atomic():
        now = timezone.now()
        closed = Conversation.objects.filter(pk=conversation_id, status="OPEN").update(
            status="CLOSED", closed_at=now, updated_at=now, close_reason=reason
        )
        if not closed:
            if Conversation.objects.filter(pk=conversation_id).exists():
                raise ConversationAlreadyClosed(
                    f"Conversation {conversation_id} is already closed."
                )
            raise ConversationNotFound(f"Conversation {conversation_id} does not exist.")
        group = MessageGroup.objects.filter(conversation_id=conversation_id, status="OPEN").first()
        if group is not None:
            group_close(group, now=now)
            # G-5: answered at once, not at the next sweep.
            schedule_reply(group.pk)
        conversation = Conversation.objects.get(pk=conversation_id)
        events.conversation_closed(
            conversation_id=conversation_id,
            tenant_id=conversation.tenant_id,
            reason=reason,
            closed_at=now,
        )
    return conversation
