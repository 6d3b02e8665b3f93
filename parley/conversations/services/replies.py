"""The reply path of one group: claim, write, record (G-2, G-3), and what a claim holds."""

from __future__ import annotations

import enum
import math
import traceback
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import structlog
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from parley.conversations import events
from parley.conversations.models import Message, MessageGroup
from parley.conversations.services._common import (
    CONVERSATION_TABLE,
    GROUP_TABLE,
    conversation_field,
    group_field,
    select_rows,
)
from parley.core import metrics, sql

log = structlog.get_logger(__name__)


class ReplyOutcome(enum.Enum):
    REPLIED = "replied"  # this call stored the reply
    NOT_DUE = "not_due"  # the group is still collecting; try again at its due time
    LEASED = "leased"  # another runner is writing it
    DONE = "done"  # already replied (a second run, or a runner that lost its lease)
    RETRY = "retry"  # the writer failed; the group is due again after a backoff (G-8)
    FAILED = "failed"  # the writer failed REPLY_MAX_ATTEMPTS times: FAILED (G-8)


@dataclass(frozen=True)
class Claimed:
    """A group a runner holds: claimed (CLOSED) and leased until ``lease_end``.

    ``lease_end`` is also the claim's token: a failure is recorded only while
    the group still carries it, so a runner that outlived its lease never
    overrides the runner that took the group over.
    """

    group_id: int
    conversation_id: UUID
    tenant_id: UUID
    last_message_at: datetime
    attempts: int  # reply_attempts after this claim: 1 on the first
    lease_end: datetime


@dataclass(frozen=True)
class ReplyResult:
    outcome: ReplyOutcome
    due_at: datetime | None = None
    claimed: Claimed | None = None  # set by a successful claim


def group_reply(*, group_id: int) -> ReplyResult:
    """Write the reply of a group that is due, exactly once (G-2, G-3).

    1. Claim, under the conversation lock: an OPEN group that is due becomes
       CLOSED (no message can join it any more), and the claimer takes a
       lease by moving ``reply_due_at`` to the end of it.
    2. Write the text, outside any transaction: the writer may be slow. Its
       failure (or timeout) makes the group due again after a backoff, or
       FAILED after REPLY_MAX_ATTEMPTS (G-8).
    3. Record, under the lock: insert the OUTBOUND message and mark the group
       REPLIED. The one-to-one ``reply_to`` makes a second reply impossible,
       even for a runner whose lease ran out.

    Safe to call any number of times, from the CLOSE_CONVERSATION task and the
    portable sweep alike. It takes only the group id: each step finds the
    conversation to lock in the same statement that locks it.
    """
    # Imported here: these modules build on this one's claim and record.
    from parley.conversations.services.context import reply_requests
    from parley.conversations.services.failures import group_reply_failed, runner_lost
    from parley.conversations.writing import writer_calls

    claim = _group_claim(group_id)
    if claim.claimed is None:
        return claim
    claimed = claim.claimed
    if claimed.attempts > settings.REPLY_MAX_ATTEMPTS:
        return group_reply_failed(claimed, error=runner_lost(claimed))
    [request] = reply_requests([claimed])
    try:
        with writer_calls() as calls:
            content = calls.submit(request).result()
    except Exception as exc:
        return group_reply_failed(claimed, error=writer_failed(claimed, exc))
    return _group_record_reply(
        group_id,
        content,
        size=len(request.messages),
        conversation_id=claimed.conversation_id,
        last_message_at=claimed.last_message_at,
    )


def one_group_time_limits() -> tuple[int, int]:
    """Soft and hard time limits, in whole seconds, of the task that answers one group
    (CLOSE_CONVERSATION): the task's usual limits, raised when a writer call may take
    longer."""
    soft = max(
        settings.CELERY_TASK_SOFT_TIME_LIMIT,
        math.ceil(settings.REPLY_WRITER_TIMEOUT.total_seconds()) + 2,
    )
    return soft, max(settings.CELERY_TASK_TIME_LIMIT, soft + 3)


def writer_failed(claimed: Claimed, exc: BaseException) -> str:
    """Log a writer's failure; return the short, redacted account stored on the group."""
    from parley.conversations.writing import describe_error

    error = describe_error(exc)
    # The frames say where it failed; the message itself may carry secrets,
    # so only its redacted summary is logged.
    where = [
        f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} in {frame.name}"
        for frame in traceback.extract_tb(exc.__traceback__)[-3:]
    ]
    log.warning(
        "reply_writer_failed",
        conversation_id=str(claimed.conversation_id),
        group_id=claimed.group_id,
        attempt=claimed.attempts,
        error=error,
        where=where,
    )
    return error


# The reply path's statements, as raw SQL like the hot path's (parley.core.sql).
# Each lock finds the group's conversation and locks that row in one statement;
# the group row is only ever written after it, as on the message path.
_LOCK_GROUP = f"""
    SELECT g.status, g.reply_due_at
    FROM {GROUP_TABLE} g JOIN {CONVERSATION_TABLE} c ON c.id = g.conversation_id
    WHERE g.id = %s
"""  # noqa: S608  (table names from the models)
_READ_GROUP = f"""
    SELECT status, reply_due_at, conversation_id, last_message_at FROM {GROUP_TABLE} WHERE id = %s
"""  # noqa: S608
_CLAIM_GROUP = f"""
    UPDATE {GROUP_TABLE}
    SET status = 'CLOSED',
        closed_at = CASE WHEN status = 'OPEN' THEN %s ELSE closed_at END,
        reply_due_at = %s,
        reply_attempts = reply_attempts + 1
    WHERE id = %s AND status IN ('OPEN', 'CLOSED') AND reply_due_at <= %s
"""  # noqa: S608
_CLAIMED_GROUP = f"""
    SELECT g.conversation_id, c.tenant_id, g.last_message_at, g.reply_attempts
    FROM {GROUP_TABLE} g JOIN {CONVERSATION_TABLE} c ON c.id = g.conversation_id
    WHERE g.id = %s
"""  # noqa: S608
_LOCK_CONVERSATION_OF_GROUP = f"""
    UPDATE {CONVERSATION_TABLE} SET updated_at = %s
    WHERE id = (SELECT conversation_id FROM {GROUP_TABLE} WHERE id = %s)
    RETURNING tenant_id
"""  # noqa: S608
_MARK_REPLIED = f"""
    UPDATE {GROUP_TABLE} SET status = 'REPLIED', replied_at = %s, reply_due_at = NULL
    WHERE id = %s AND status <> 'REPLIED'
"""  # noqa: S608  (a FAILED group that a late runner answers after all is answered)


def _read_group_columns() -> list[Any]:
    return [
        group_field("status"),
        group_field("reply_due_at"),
        group_field("conversation"),
        group_field("last_message_at"),
    ]


def _claimed_group_columns() -> list[Any]:
    return [
        group_field("conversation"),
        conversation_field("tenant"),
        group_field("last_message_at"),
        group_field("reply_attempts"),
    ]


def _lock_group(group_id: int) -> tuple[str, datetime | None] | None:
    """Lock the group's conversation and read the group's status and due time, in one statement.

    Caller is in a transaction. Only the conversation row is locked
    (``FOR UPDATE OF c``; SQLite's IMMEDIATE transaction already serialises
    every writer). None if the group does not exist.

    On PostgreSQL a statement that waited for the lock returns the group row
    as it was before the lock's holder changed it, so the result is a hint:
    the claim itself is a conditional UPDATE, evaluated under the lock.
    """
    query = _LOCK_GROUP + (
        " FOR UPDATE OF c" if connection.features.has_select_for_update_of else ""
    )
    rows = select_rows(query, [(group_field("id"), group_id)], _read_group_columns()[:2])
    if not rows:
        return None
    status, due_at = rows[0]
    return status, due_at


def _group_claim(group_id: int) -> ReplyResult:
    """Claim one group if it is due: outcome REPLIED (the claim is ``claimed``), or why not."""
    with transaction.atomic():
        now = timezone.now()
        lease_end = now + settings.REPLY_LEASE
        found = _lock_group(group_id)
        if found is None:
            return ReplyResult(ReplyOutcome.DONE)
        status, due_at = found
        if status in (MessageGroup.Status.OPEN, MessageGroup.Status.CLOSED):
            assert due_at is not None
            if due_at <= now:
                claimed = sql.execute(
                    _CLAIM_GROUP,
                    [
                        (group_field("closed_at"), now),
                        (group_field("reply_due_at"), lease_end),
                        (group_field("id"), group_id),
                        (group_field("reply_due_at"), now),
                    ],
                )
                if claimed:
                    conversation_id, tenant_id, last_message_at, attempts = select_rows(
                        _CLAIMED_GROUP, [(group_field("id"), group_id)], _claimed_group_columns()
                    )[0]
                    return ReplyResult(
                        ReplyOutcome.REPLIED,
                        claimed=Claimed(
                            group_id=group_id,
                            conversation_id=conversation_id,
                            tenant_id=tenant_id,
                            last_message_at=last_message_at,
                            attempts=attempts,
                            lease_end=lease_end,
                        ),
                    )
                # The group changed while this runner waited for the lock
                # (another runner claimed or answered it, or a message moved
                # its due time on): read it again, under the lock.
                status, due_at, _, _ = select_rows(
                    _READ_GROUP, [(group_field("id"), group_id)], _read_group_columns()
                )[0]
        if status == MessageGroup.Status.REPLIED:
            return ReplyResult(ReplyOutcome.DONE)
        if status == MessageGroup.Status.FAILED:
            return ReplyResult(ReplyOutcome.FAILED)
        # Not due: a stale hint here only makes the caller try again, early.
        outcome = (
            ReplyOutcome.NOT_DUE if status == MessageGroup.Status.OPEN else ReplyOutcome.LEASED
        )
        return ReplyResult(outcome, due_at=due_at)


def _group_record_reply(
    group_id: int,
    content: str,
    *,
    size: int,
    conversation_id: UUID | None = None,
    last_message_at: datetime | None = None,
) -> ReplyResult:
    """Store the reply and mark the group REPLIED, under the conversation lock.

    ``conversation_id`` and ``last_message_at`` are the group's (they never
    change once it is claimed); they are read here when not given.
    """
    reply_id = uuid4()
    try:
        with transaction.atomic():
            now = timezone.now()
            # The lock; the same UPDATE moves the conversation's updated_at.
            locked = select_rows(
                _LOCK_CONVERSATION_OF_GROUP,
                [(conversation_field("updated_at"), now), (group_field("id"), group_id)],
                [conversation_field("tenant")],
            )
            if not locked:  # no such group
                return ReplyResult(ReplyOutcome.DONE)
            marked = sql.execute(
                _MARK_REPLIED,
                [(group_field("replied_at"), now), (group_field("id"), group_id)],
            )
            if not marked:  # already replied: undo the move of updated_at
                transaction.set_rollback(True)
                return ReplyResult(ReplyOutcome.DONE)
            if conversation_id is None or last_message_at is None:
                _, _, conversation_id, last_message_at = select_rows(
                    _READ_GROUP, [(group_field("id"), group_id)], _read_group_columns()
                )[0]
            # A second reply to the group would be a unique violation (G-3).
            sql.insert(
                Message,
                {
                    "id": reply_id,
                    "conversation": conversation_id,
                    "type": Message.Type.OUTBOUND,
                    "content": content,
                    "timestamp": now,
                    "received_at": now,
                    "reply_to": group_id,
                },
            )
            events.reply_sent(
                message_id=reply_id,
                conversation_id=conversation_id,
                tenant_id=locked[0][0],
                group_id=group_id,
                sent_at=now,
            )
    except IntegrityError:
        return ReplyResult(ReplyOutcome.DONE)
    assert conversation_id is not None
    assert last_message_at is not None
    note_replied(conversation_id, group_id, reply_id, size=size, delay=now - last_message_at)
    return ReplyResult(ReplyOutcome.REPLIED)


def note_replied(
    conversation_id: UUID, group_id: int, reply_id: UUID, *, size: int, delay: timedelta
) -> None:
    metrics.GROUP_SIZE.observe(size)
    metrics.REPLY_DELAY.observe(delay.total_seconds())
    log.info(
        "group_replied",
        conversation_id=str(conversation_id),
        group_id=group_id,
        reply_id=str(reply_id),
        size=size,
        delay_s=round(delay.total_seconds(), 3),
    )
