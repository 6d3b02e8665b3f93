"""When the writer fails (G-8): retry with backoff, then FAILED; and an operator's retry.

A failed attempt (the writer raised, returned no text, or timed out) ends
the runner's lease early: the group stays CLOSED and is due again after an
exponential backoff (``rules.reply_retry_delay``), so the next sweep or
runner takes it then. The attempt that reaches ``REPLY_MAX_ATTEMPTS`` marks
it FAILED instead: no ``reply_due_at`` (nothing retries it), ``failed_at``
and ``last_error`` set, and a ``reply.failed`` event in the same
transaction. An attempt whose runner died (SIGKILL, a time limit) records
nothing; its lease runs out and the next claim counts it, so a writer that
kills its process every time also ends FAILED.

A FAILED group never holds its conversation up: it is not OPEN, so the next
message starts a new group, which is answered as usual (its writer sees the
failed group's messages in its history); CLOSE_CONVERSATION closes the
conversation and leaves the FAILED group as it is. :func:`group_retry` (the
admin action, ``manage.py retry_replies`` and the console) makes it due
again with a fresh set of attempts, even after the conversation closed.
"""

from __future__ import annotations

import random

import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from parley.conversations import events, rules
from parley.conversations.models import Conversation, MessageGroup
from parley.conversations.services.replies import (
    Claimed,
    ReplyOutcome,
    ReplyResult,
    _lock_group,
)
from parley.core import metrics
from parley.core.errors import GroupNotFailed, GroupNotFound

log = structlog.get_logger(__name__)


def runner_lost(claimed: Claimed) -> str:
    """The error of a group claimed once more after its last attempt left no result."""
    error = (
        f"attempt {claimed.attempts - 1} ended without a result "
        "(its runner stopped: a crash, a kill or a time limit)"
    )
    log.warning(
        "reply_runner_lost",
        conversation_id=str(claimed.conversation_id),
        group_id=claimed.group_id,
        attempts=claimed.attempts - 1,
    )
    return error


def group_reply_failed(claimed: Claimed, *, error: str) -> ReplyResult:
    """Record a failed attempt of a claimed group: due again after a backoff, or FAILED.

    Only while the group still carries this claim's lease: if the lease ran
    out and another runner took the group over (or answered it), that
    runner's attempt is the one that counts, and nothing is written here.
    """
    with transaction.atomic():
        now = timezone.now()
        # The conversation lock first, as every writer of its groups takes it.
        tenant_id = (
            Conversation.objects.select_for_update()
            .values_list("tenant_id", flat=True)
            .filter(pk=claimed.conversation_id)
            .first()
        )
        still_ours = MessageGroup.objects.filter(
            pk=claimed.group_id,
            status=MessageGroup.Status.CLOSED,
            reply_due_at=claimed.lease_end,
        )
        if claimed.attempts >= settings.REPLY_MAX_ATTEMPTS:
            failed = still_ours.update(
                status=MessageGroup.Status.FAILED,
                reply_due_at=None,
                failed_at=now,
                last_error=error,
            )
            if not failed or tenant_id is None:
                return ReplyResult(ReplyOutcome.DONE)
            events.reply_failed(
                conversation_id=claimed.conversation_id,
                tenant_id=tenant_id,
                group_id=claimed.group_id,
                attempts=claimed.attempts,
                error=error,
                failed_at=now,
            )
            transaction.on_commit(metrics.GROUPS_FAILED.inc)
            log.error(
                "group_failed",
                conversation_id=str(claimed.conversation_id),
                group_id=claimed.group_id,
                attempts=claimed.attempts,
                error=error,
            )
            return ReplyResult(ReplyOutcome.FAILED)
        due_at = now + rules.reply_retry_delay(
            attempt=claimed.attempts,
            base=settings.REPLY_RETRY_BACKOFF,
            cap=settings.REPLY_RETRY_BACKOFF_MAX,
            jitter=random.random(),  # noqa: S311  (spreading retries, not a secret)
        )
        if not still_ours.update(reply_due_at=due_at, last_error=error):
            return ReplyResult(ReplyOutcome.DONE)
        transaction.on_commit(metrics.REPLY_RETRIES.inc)
    return ReplyResult(ReplyOutcome.RETRY, due_at=due_at)


def group_retry(*, group_id: int) -> MessageGroup:
    """Send a FAILED group back to the writer: due now, with REPLY_MAX_ATTEMPTS new attempts.

    The one service behind the admin action, ``manage.py retry_replies`` and
    the console. ``last_error`` is kept until a later attempt replaces it.
    Raises GroupNotFound, or GroupNotFailed for a group in any other state.
    """
    with transaction.atomic():
        if _lock_group(group_id) is None:
            raise GroupNotFound(f"Message group {group_id} does not exist.")
        # Read again under the lock: the lock's own read may predate it.
        group = MessageGroup.objects.select_related("conversation").get(pk=group_id)
        if group.status != MessageGroup.Status.FAILED:
            raise GroupNotFailed(
                f"Message group {group_id} is {group.status}; only a FAILED group can be retried."
            )
        now = timezone.now()
        MessageGroup.objects.filter(pk=group_id, status=MessageGroup.Status.FAILED).update(
            status=MessageGroup.Status.CLOSED, reply_due_at=now, reply_attempts=0, failed_at=None
        )
        events.reply_retried(
            conversation_id=group.conversation_id,
            tenant_id=group.conversation.tenant_id,
            group_id=group_id,
            retried_at=now,
        )
        transaction.on_commit(metrics.GROUPS_RETRIED.inc)
    log.info("group_retried", conversation_id=str(group.conversation_id), group_id=group_id)
    group.refresh_from_db()
    return group
