"""The lifecycle's facts, as outbox events (T-4). Closes are written by
``conversation_close`` (``conversation.closed``, with its reason)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from parley.outbox.services import event_append

TRANSCRIPT_ARCHIVED = "transcript.archived"


def transcript_archived(
    *,
    conversation_id: UUID,
    tenant_id: UUID,
    name: str,
    sha256: str,
    size: int,
    archived_at: datetime,
) -> None:
    """The transcript of ``conversation_id`` is in the object store as ``name``."""
    event_append(
        type=TRANSCRIPT_ARCHIVED,
        occurred_at=archived_at,
        tenant_id=tenant_id,
        subject=conversation_id,
        data={
            "conversation_id": str(conversation_id),
            "object": name,
            "sha256": sha256,
            "bytes": size,
        },
    )
