"""The sweeper: answers every due group, in batches on PostgreSQL (G-4)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple
from uuid import UUID, uuid4

import structlog
from django.conf import settings
from django.db import connection
from django.utils import timezone

from parley.conversations.models import BufferedMessage, MessageGroup
from parley.conversations.replies import InboundMessage, ReplyRequest, get_reply_writer
from parley.conversations.services._common import (
    MESSAGE_TABLE,
    database_functions,
)
from parley.conversations.services.replies import ReplyOutcome, group_reply, note_replied
from parley.core import metrics
from parley.core.db import SWEEPER_LOCK_KEY, singleton_lock

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SweepReport:
    orphans_expired: int
    groups_replied: int
    ran: bool = True  # False: another sweep was running, this one did nothing


def due_work_sweep(*, budget: float = 5.0) -> SweepReport:
    """Answer every group that is due; run by the scheduler every ``SWEEP_INTERVAL``.

    1. Only one sweep runs at a time (a session advisory lock on PostgreSQL):
       the scheduler's ticks that find one running return at once, instead of
       racing it for the same groups.
    2. Expire buffered messages older than the tolerance (for the audit and the
       metrics; adoption checks the age itself and never depends on this).
    3. Reply to the due groups, oldest due first, ``SWEEP_BATCH_SIZE`` at a
       time, until none is left or ``budget`` seconds have passed (the next
       tick goes on). On PostgreSQL a batch is claimed in one call and
       recorded in one call (:func:`_reply_batch`); elsewhere each group goes
       through :func:`group_reply`. A group whose runner died is due again
       when its lease ends, so it is retried here too (G-4).
    """
    with singleton_lock(SWEEPER_LOCK_KEY) as acquired:
        if not acquired:
            return SweepReport(orphans_expired=0, groups_replied=0, ran=False)
        now = timezone.now()
        expired = BufferedMessage.objects.filter(
            status=BufferedMessage.Status.BUFFERED,
            received_at__lt=now - settings.ORPHAN_TOLERANCE,
        ).update(status=BufferedMessage.Status.EXPIRED, resolved_at=now)
        if expired:
            metrics.ORPHANS.labels(outcome="expired").inc(expired)
        started = time.monotonic()
        replied = 0
        while True:
            batch = _reply_batch if database_functions() else _reply_one_by_one
            taken, answered = batch(settings.SWEEP_BATCH_SIZE)
            replied += answered
            if taken < settings.SWEEP_BATCH_SIZE or time.monotonic() - started > budget:
                break
        metrics.SWEEP_DURATION.observe(time.monotonic() - started)
    return SweepReport(orphans_expired=expired, groups_replied=replied)


def _reply_one_by_one(limit: int) -> tuple[int, int]:
    """Answer up to ``limit`` due groups with :func:`group_reply`; (taken, replied)."""
    due_ids = list(
        MessageGroup.objects.filter(status__in=["OPEN", "CLOSED"], reply_due_at__lte=timezone.now())
        .order_by("reply_due_at")
        .values_list("pk", flat=True)[:limit]
    )
    replied = 0
    for group_id in due_ids:
        try:
            replied += group_reply(group_id=group_id).outcome is ReplyOutcome.REPLIED
        except Exception:
            # Its lease keeps it out of the next batches until it ends (then
            # it is retried); the other groups go on.
            _reply_failed(group_id)
    return len(due_ids), replied


class _Written(NamedTuple):
    group_id: int
    conversation_id: UUID
    reply_id: UUID
    content: str
    last_message_at: datetime
    size: int


_CLAIM_DUE_GROUPS = "SELECT * FROM parley_claim_due_groups(%s, %s, %s)"
_BATCH_MESSAGES = f"""
    SELECT group_id, id, content, timestamp FROM {MESSAGE_TABLE}
    WHERE group_id = ANY(%s)
    ORDER BY group_id, timestamp, received_at, id
"""  # noqa: S608  (table name from the model)
_RECORD_REPLIES = "SELECT * FROM parley_record_replies(%s, %s, %s, %s)"


def _reply_batch(limit: int) -> tuple[int, int]:
    """Claim up to ``limit`` due groups, write their replies, record them; (claimed, replied).

    Three round trips for the whole batch (claim, read, record) instead of
    about ten per group. Same steps and guarantees as :func:`group_reply`:
    the claim closes and leases the groups under their conversations' locks,
    the writer runs outside any transaction, and the record skips a group
    already answered. PostgreSQL only.
    """
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_DUE_GROUPS, [now, now + settings.REPLY_LEASE, limit])
        claimed = cursor.fetchall()
        if not claimed:
            return 0, 0
        cursor.execute(_BATCH_MESSAGES, [[group_id for group_id, _, _ in claimed]])
        messages: dict[int, list[InboundMessage]] = {}
        for group_id, message_id, content, timestamp in cursor.fetchall():
            messages.setdefault(group_id, []).append(InboundMessage(message_id, content, timestamp))
    writer = get_reply_writer()
    written: list[_Written] = []
    for group_id, conversation_id, last_message_at in claimed:
        request = ReplyRequest(
            conversation_id=conversation_id,
            group_id=group_id,
            messages=messages.get(group_id, []),
            language=settings.REPLY_LANGUAGE,
        )
        try:
            content = writer(request)
        except Exception:
            _reply_failed(group_id)
            continue
        written.append(
            _Written(
                group_id, conversation_id, uuid4(), content, last_message_at, len(request.messages)
            )
        )
    if not written:
        return len(claimed), 0
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            _RECORD_REPLIES,
            [
                now,
                [w.group_id for w in written],
                [w.reply_id for w in written],
                [w.content for w in written],
            ],
        )
        recorded = {row[0] for row in cursor.fetchall()}
    for w in written:
        if w.group_id in recorded:
            note_replied(
                w.conversation_id,
                w.group_id,
                w.reply_id,
                size=w.size,
                delay=now - w.last_message_at,
            )
    return len(claimed), len(recorded)


def _reply_failed(group_id: int) -> None:
    """The writer (or the database) failed for one group: log it and go on.

    The group keeps its lease, so no sweep takes it again until the lease
    ends; then it is retried.
    """
    log.exception("group_reply_failed", group_id=group_id)
    metrics.TASK_FAILURES.labels(task="sweep.group_reply").inc()
