"""The sweeper: finds every due group and answers it, or has runners answer it (G-4, G-8)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime

import structlog
from django.conf import settings
from django.utils import timezone

from parley.conversations.models import BufferedMessage, MessageGroup
from parley.conversations.replies import reply_runner_mode
from parley.conversations.services._common import database_functions
from parley.conversations.services.batches import claim_due, give_up_exhausted, settle
from parley.conversations.services.context import reply_requests
from parley.conversations.services.replies import ReplyOutcome, group_reply
from parley.conversations.services.runner import runner_capacity, runners_start
from parley.conversations.writing import writer_calls
from parley.core import metrics
from parley.core.db import SWEEPER_LOCK_KEY, singleton_lock

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SweepReport:
    orphans_expired: int
    groups_replied: int
    ran: bool = True  # False: another sweep was running, this one did nothing
    runners_started: int = 0


def due_work_sweep(*, budget: float = 5.0) -> SweepReport:
    """Answer every group that is due; run by the scheduler every ``SWEEP_INTERVAL``.

    1. Only one sweep runs at a time (a session advisory lock on PostgreSQL):
       the scheduler's ticks that find one running return at once, instead of
       racing it for the same groups.
    2. Expire buffered messages older than the tolerance (for the audit and the
       metrics; adoption checks the age itself and never depends on this).
    3. With ``REPLY_RUNNER`` "sweep" (the default writer): reply to the due
       groups, oldest due first, ``SWEEP_BATCH_SIZE`` at a time, until none is
       left or ``budget`` seconds have passed (the next tick goes on). On
       PostgreSQL a batch is claimed in one call and recorded in one call
       (:func:`_reply_batch`); elsewhere each group goes through
       :func:`group_reply`.
       With "tasks" (any other writer): count the due groups and start as many
       runner tasks as they need, at most ``REPLY_RUNNER_BURST``; the runners
       claim, write and record them (:mod:`services.runner`).
       Either way a group whose runner died is due again when its lease ends,
       and one whose writer failed after its backoff, so it is retried here
       too (G-4, G-8).
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
        if reply_runner_mode() == "tasks":
            runners = _start_runners(now)
            metrics.SWEEP_DURATION.observe(time.monotonic() - started)
            return SweepReport(orphans_expired=expired, groups_replied=0, runners_started=runners)
        replied = 0
        while True:
            batch = _reply_batch if database_functions() else _reply_one_by_one
            taken, answered = batch(settings.SWEEP_BATCH_SIZE)
            replied += answered
            if taken < settings.SWEEP_BATCH_SIZE or time.monotonic() - started > budget:
                break
        metrics.SWEEP_DURATION.observe(time.monotonic() - started)
    return SweepReport(orphans_expired=expired, groups_replied=replied)


def _start_runners(now: datetime) -> int:
    """One runner per due group (per REPLY_ASYNC_CONCURRENCY groups for an async writer).

    The count reads at most what the runners could take, through the due
    index. Runners already running take due groups too, as they finish their
    calls; one started here that finds nothing left ends at once. A sweep
    runs only on a free worker process, so while every process is busy
    writing, no runner piles up behind them.
    """
    per_runner = runner_capacity()
    most = settings.REPLY_RUNNER_BURST * per_runner
    due = (
        MessageGroup.objects.filter(
            status__in=[MessageGroup.Status.OPEN, MessageGroup.Status.CLOSED],
            reply_due_at__lte=now,
        )
        .order_by()
        .values("pk")[:most]
        .count()
    )
    return runners_start(math.ceil(due / per_runner)) if due else 0


def _reply_one_by_one(limit: int) -> tuple[int, int]:
    """Answer up to ``limit`` due groups with :func:`group_reply`; (taken, replied)."""
    due_ids = list(
        MessageGroup.objects.filter(status__in=["OPEN", "CLOSED"], reply_due_at__lte=timezone.now())
        .order_by("reply_due_at")
        .values_list("pk", flat=True)[:limit]
    )
    replied = 0
    for group_id in due_ids:
        # A failing writer makes its group due later (or FAILED); the others go on.
        try:
            replied += group_reply(group_id=group_id).outcome is ReplyOutcome.REPLIED
        except Exception:
            # Anything else (the database, say): its lease keeps the group out
            # of the next batches until it ends, then it is retried.
            log.exception("group_reply_failed", group_id=group_id)
            metrics.TASK_FAILURES.labels(task="sweep.group_reply").inc()
    return len(due_ids), replied


def _reply_batch(limit: int) -> tuple[int, int]:
    """Claim up to ``limit`` due groups, write their replies, record them; (claimed, replied).

    Three round trips for the whole batch on PostgreSQL (claim, read, record)
    instead of about ten per group, and a transaction per failed attempt.
    Same steps and guarantees as :func:`group_reply`: the claim closes and
    leases the groups under their conversations' locks, the writer runs
    outside any transaction, and the record skips a group already answered.
    """
    claimed = claim_due(limit)
    if not claimed:
        return 0, 0
    to_write = give_up_exhausted(claimed)
    with writer_calls() as calls:
        started = [
            (c, request, calls.submit(request))
            for c, request in zip(to_write, reply_requests(to_write), strict=True)
        ]
    replied, _ = settle(started)
    return len(claimed), replied
