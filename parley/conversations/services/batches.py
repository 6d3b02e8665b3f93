"""Claiming and recording many groups at once: the steps a sweep batch and a runner share.

On PostgreSQL a claim is one call of ``parley_claim_due_groups`` and a record
one call of ``parley_record_replies``, whatever the number of groups (three
round trips for a batch with :func:`services.context.reply_requests`).
Elsewhere the same steps run group by group through the one-group functions
of :mod:`services.replies`. Both keep G-3: the claim closes and leases each
group under its conversation's lock, the writer runs outside any
transaction, and the record skips a group already answered.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from typing import NamedTuple
from uuid import UUID, uuid4

from django.conf import settings
from django.db import connection
from django.utils import timezone

from parley.conversations.models import MessageGroup
from parley.conversations.replies import ReplyRequest
from parley.conversations.services._common import database_functions
from parley.conversations.services.failures import group_reply_failed, runner_lost
from parley.conversations.services.replies import (
    Claimed,
    ReplyOutcome,
    _group_claim,
    _group_record_reply,
    note_replied,
    writer_failed,
)

_CLAIM_DUE_GROUPS = "SELECT * FROM parley_claim_due_groups(%s, %s, %s)"
_RECORD_REPLIES = "SELECT * FROM parley_record_replies(%s, %s, %s, %s)"


def claim_due(limit: int) -> list[Claimed]:
    """Claim up to ``limit`` due groups, oldest due first (a few more if a conversation has two).

    Conversations another claimer holds right now are skipped, not waited
    for, so concurrent runners take different groups.
    """
    now = timezone.now()
    lease_end = now + settings.REPLY_LEASE
    if database_functions():
        with connection.cursor() as cursor:
            cursor.execute(_CLAIM_DUE_GROUPS, [now, lease_end, limit])
            return [
                Claimed(group_id, conversation_id, tenant_id, last_message_at, attempts, lease_end)
                for group_id, conversation_id, last_message_at, attempts, tenant_id in (
                    cursor.fetchall()
                )
            ]
    # Portable: a few candidates more than wanted, since another runner may
    # claim some of them first; each claim is conditional, under its lock.
    candidates = list(
        MessageGroup.objects.filter(
            status__in=[MessageGroup.Status.OPEN, MessageGroup.Status.CLOSED],
            reply_due_at__lte=now,
        )
        .order_by("reply_due_at")
        .values_list("pk", flat=True)[: 2 * limit + 4]
    )
    claimed: list[Claimed] = []
    for group_id in candidates:
        result = _group_claim(group_id)
        if result.claimed is not None:
            claimed.append(result.claimed)
            if len(claimed) >= limit:
                break
    return claimed


def give_up_exhausted(claimed: Sequence[Claimed]) -> list[Claimed]:
    """Mark FAILED the groups claimed once more after their last attempt left no result;
    return the others, which get a writer call."""
    callable_ = []
    for c in claimed:
        if c.attempts > settings.REPLY_MAX_ATTEMPTS:
            group_reply_failed(c, error=runner_lost(c))
        else:
            callable_.append(c)
    return callable_


class Written(NamedTuple):
    claimed: Claimed
    reply_id: UUID
    content: str
    size: int


def settle(done: Iterable[tuple[Claimed, ReplyRequest, Future[str]]]) -> tuple[int, int]:
    """Record the calls that ended: every reply in one record, each failure on its own.

    Returns (replied, failed attempts).
    """
    written: list[Written] = []
    failed = 0
    for claimed, request, future in done:
        error = future.exception()
        if error is not None:
            group_reply_failed(claimed, error=writer_failed(claimed, error))
            failed += 1
        else:
            written.append(Written(claimed, uuid4(), future.result(), len(request.messages)))
    return record_replies(written), failed


def record_replies(written: Sequence[Written]) -> int:
    """Store the replies and mark their groups REPLIED; return how many were recorded."""
    if not written:
        return 0
    if not database_functions():
        return sum(
            _group_record_reply(
                w.claimed.group_id,
                w.content,
                size=w.size,
                conversation_id=w.claimed.conversation_id,
                last_message_at=w.claimed.last_message_at,
            ).outcome
            is ReplyOutcome.REPLIED
            for w in written
        )
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            _RECORD_REPLIES,
            [
                now,
                [w.claimed.group_id for w in written],
                [w.reply_id for w in written],
                [w.content for w in written],
            ],
        )
        recorded = {row[0] for row in cursor.fetchall()}
    for w in written:
        if w.claimed.group_id in recorded:
            note_replied(
                w.claimed.conversation_id,
                w.claimed.group_id,
                w.reply_id,
                size=w.size,
                delay=now - w.claimed.last_message_at,
            )
    return len(recorded)
