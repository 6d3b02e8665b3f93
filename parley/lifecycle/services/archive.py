"""The transcript archive (T-5): each closed conversation, written once to the object store.

A conversation is due for the archive once it is CLOSED and owes no reply
(no group with a ``reply_due_at``: G-5's reply to a close has been written).
The sweep finds them through ``conversation_unarchived_idx``; each one is:

1. read with its messages (the read model's two queries) and serialised
   deterministically: ``{"conversation": <T-3 fields>, "messages": [...]}``;
2. written with :meth:`~parley.core.objectstore.ObjectStore.put_new`, which
   creates the object only if there is none (``If-None-Match: *`` on S3, a
   hard link on a folder). When one is there already, a racing archiver or
   an earlier run that died before step 3 wrote it: its bytes are read back
   and they are what gets recorded;
3. recorded: ``archived_at`` and ``transcript_sha256`` set by a conditional
   UPDATE (``WHERE archived_at IS NULL``), with the ``transcript.archived``
   event in the same transaction.

So however closes and sweeps race, one object is written per conversation
(one version, on a versioned bucket) and one event says so. Object I/O runs
outside any transaction.
"""

from __future__ import annotations

import enum
import hashlib
import json
import time
from datetime import UTC
from typing import Any
from uuid import UUID

import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from parley.conversations import selectors
from parley.conversations.models import Conversation, MessageGroup
from parley.conversations.serializers import ConversationSummaryOutput, MessageOutput
from parley.core.objectstore import object_store
from parley.lifecycle import events

log = structlog.get_logger(__name__)

# T-3's fields that describe the archive itself: they cannot be inside it.
_NOT_IN_TRANSCRIPT = ("archived_at", "transcript_sha256")


class ArchiveOutcome(enum.Enum):
    ARCHIVED = "archived"
    ALREADY = "already"  # archived before, by this or another archiver
    NOT_DUE = "not_due"  # unknown, still OPEN, or still owes a reply


def _owes_a_reply() -> Exists:
    owing = MessageGroup.objects.filter(conversation=OuterRef("pk"), reply_due_at__isnull=False)
    return Exists(owing)


def transcripts_archive_sweep(*, deadline: float | None = None) -> tuple[int, bool]:
    """Archive every conversation that is due; (archived, work left)."""
    archived = 0
    failed: set[UUID] = set()
    while True:
        batch = list(
            Conversation.objects.filter(status=Conversation.Status.CLOSED, archived_at__isnull=True)
            .alias(owes_a_reply=_owes_a_reply())
            .filter(owes_a_reply=False)
            .exclude(pk__in=failed)
            .order_by("closed_at")
            .values_list("pk", flat=True)[: settings.LIFECYCLE_BATCH_SIZE]
        )
        for conversation_id in batch:
            try:
                outcome = transcript_archive(conversation_id=conversation_id)
            except Exception:
                # The object store is down, or refused: retried at the next tick.
                log.exception("transcript_archive_failed", conversation_id=str(conversation_id))
                failed.add(conversation_id)
                continue
            archived += outcome is ArchiveOutcome.ARCHIVED
            if deadline is not None and time.monotonic() > deadline:
                return archived, True
        if len(batch) < settings.LIFECYCLE_BATCH_SIZE:
            return archived, False


def transcript_archive(*, conversation_id: UUID) -> ArchiveOutcome:
    """Write the transcript of one closed conversation once, and record it (steps above)."""
    conversation = selectors.conversation_with_messages(conversation_id=conversation_id)
    if conversation is None or conversation.status != Conversation.Status.CLOSED:
        return ArchiveOutcome.NOT_DUE
    if conversation.archived_at is not None:
        return ArchiveOutcome.ALREADY
    if MessageGroup.objects.filter(
        conversation_id=conversation_id, reply_due_at__isnull=False
    ).exists():
        return ArchiveOutcome.NOT_DUE
    name = transcript_name(conversation)
    body = transcript_bytes(conversation)
    store = object_store()
    if not store.put_new(name, body):
        body = store.get(name)
    sha256 = hashlib.sha256(body).hexdigest()
    with transaction.atomic():
        now = timezone.now()
        recorded = Conversation.objects.filter(pk=conversation_id, archived_at__isnull=True).update(
            archived_at=now, transcript_sha256=sha256
        )
        if not recorded:
            return ArchiveOutcome.ALREADY
        events.transcript_archived(
            conversation_id=conversation_id,
            tenant_id=conversation.tenant_id,
            name=name,
            sha256=sha256,
            size=len(body),
            archived_at=now,
        )
    log.info("transcript_archived", conversation_id=str(conversation_id), object=name)
    return ArchiveOutcome.ARCHIVED


def transcript_name(conversation: Conversation) -> str:
    """``transcripts/tenant={tenant_id}/dt={UTC closed date}/{conversation_id}.json`` (T-5)."""
    assert conversation.closed_at is not None
    day = conversation.closed_at.astimezone(UTC).date().isoformat()
    return f"transcripts/tenant={conversation.tenant_id}/dt={day}/{conversation.pk}.json"


def transcript_document(conversation: Conversation) -> dict[str, Any]:
    """The conversation's T-3 fields and its messages in R-1 order (prefetched)."""
    fields = dict(ConversationSummaryOutput(conversation).data)
    for key in _NOT_IN_TRANSCRIPT:
        fields.pop(key)
    messages = MessageOutput(conversation.messages.all(), many=True).data
    return {"conversation": fields, "messages": [dict(m) for m in messages]}


def transcript_bytes(conversation: Conversation) -> bytes:
    """UTF-8 JSON, keys in the representation's order, no spacing: the same
    conversation always gives the same bytes (and so the same sha256)."""
    document = transcript_document(conversation)
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
