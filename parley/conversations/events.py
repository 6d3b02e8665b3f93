"""The conversation facts, as outbox events (STYLE "Outbox"; SPEC T-4, C-4).

One function per fact, called in the transaction that makes it true. The
PostgreSQL functions of the hot paths (migration 0005) write the same rows
with the same ``data``; the intake and reply tests read them back on both
paths. ``data`` carries ids and the few values a reader cannot look up
later (a group's due time at that moment); readers fetch the rest.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from parley.outbox.services import event_append, iso

CONVERSATION_OPENED = "conversation.opened"
CONVERSATION_CLOSED = "conversation.closed"
MESSAGE_RECEIVED = "message.received"
REPLY_SENT = "reply.sent"
REPLY_FAILED = "reply.failed"
REPLY_RETRIED = "reply.retried"
MESSAGE_SENT = "message.sent"


def conversation_opened(
    *,
    conversation_id: UUID,
    tenant_id: UUID,
    occurred_at: datetime,
    channel_uuid: str | None = None,
    contact_urn: str | None = None,
) -> None:
    event_append(
        type=CONVERSATION_OPENED,
        occurred_at=occurred_at,
        tenant_id=tenant_id,
        subject=conversation_id,
        data={
            "conversation_id": str(conversation_id),
            "channel_uuid": channel_uuid,
            "contact_urn": contact_urn,
        },
    )


def message_received(
    *,
    message_id: UUID,
    conversation_id: UUID,
    tenant_id: UUID,
    group_id: int,
    reply_due_at: datetime | None,
    timestamp: datetime,
    received_at: datetime,
) -> None:
    """An INBOUND message joined ``group_id``, whose reply is now due at ``reply_due_at``."""
    event_append(
        type=MESSAGE_RECEIVED,
        occurred_at=received_at,
        tenant_id=tenant_id,
        subject=conversation_id,
        data={
            "message_id": str(message_id),
            "conversation_id": str(conversation_id),
            "group_id": group_id,
            "reply_due_at": iso(reply_due_at) if reply_due_at else None,
            "timestamp": iso(timestamp),
        },
    )


def reply_sent(
    *, message_id: UUID, conversation_id: UUID, tenant_id: UUID, group_id: int, sent_at: datetime
) -> None:
    event_append(
        type=REPLY_SENT,
        occurred_at=sent_at,
        tenant_id=tenant_id,
        subject=conversation_id,
        data={
            "message_id": str(message_id),
            "conversation_id": str(conversation_id),
            "group_id": group_id,
        },
    )


def reply_failed(
    *,
    conversation_id: UUID,
    tenant_id: UUID,
    group_id: int,
    attempts: int,
    error: str,
    failed_at: datetime,
) -> None:
    """The group is FAILED (G-8): no reply until an operator retries it."""
    event_append(
        type=REPLY_FAILED,
        occurred_at=failed_at,
        tenant_id=tenant_id,
        subject=conversation_id,
        data={
            "conversation_id": str(conversation_id),
            "group_id": group_id,
            "attempts": attempts,
            "error": error,
        },
    )


def reply_retried(
    *, conversation_id: UUID, tenant_id: UUID, group_id: int, retried_at: datetime
) -> None:
    """An operator sent a FAILED group back to the writer: its reply is due now."""
    event_append(
        type=REPLY_RETRIED,
        occurred_at=retried_at,
        tenant_id=tenant_id,
        subject=conversation_id,
        data={"conversation_id": str(conversation_id), "group_id": group_id},
    )


def conversation_closed(
    *, conversation_id: UUID, tenant_id: UUID, reason: str, closed_at: datetime
) -> None:
    event_append(
        type=CONVERSATION_CLOSED,
        occurred_at=closed_at,
        tenant_id=tenant_id,
        subject=conversation_id,
        data={"conversation_id": str(conversation_id), "reason": reason},
    )


def message_sent(
    *,
    message_id: UUID,
    conversation_id: UUID,
    tenant_id: UUID,
    timestamp: datetime,
    received_at: datetime,
    external_id: str | None,
) -> None:
    """An OUTBOUND message written by someone else (an agent: the seed's message.sent, Q-2)."""
    event_append(
        type=MESSAGE_SENT,
        occurred_at=received_at,
        tenant_id=tenant_id,
        subject=conversation_id,
        data={
            "message_id": str(message_id),
            "conversation_id": str(conversation_id),
            "timestamp": iso(timestamp),
            "external_id": external_id,
        },
    )
