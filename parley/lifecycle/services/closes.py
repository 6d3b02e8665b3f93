"""Automatic closes (T-1, T-2): idle conversations, and each tenant's daily close.

Every close goes through :func:`conversation_close` with its reason, exactly
like CLOSE_CONVERSATION: the conditional ``UPDATE ... WHERE status = 'OPEN'``
decides who closes, a pending group is answered at once (G-5), and the
``conversation.closed`` event is written in the same transaction. So a
manual close, the idle sweep and a daily close that race close a
conversation once, and nothing here needs a lock of its own: two ticks
(two schedulers) may run at the same time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import structlog
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import (
    DateTimeField,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    IntegerField,
    OuterRef,
    Q,
    Value,
)
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone
from structlog.contextvars import bound_contextvars

from parley.conversations.models import Conversation
from parley.conversations.services import conversation_close
from parley.core.errors import ConversationAlreadyClosed
from parley.lifecycle import rules
from parley.lifecycle.models import ScheduledClose
from parley.tenants.models import Tenant

log = structlog.get_logger(__name__)

# How long a daily close's runner owns it between two renewals (one per
# batch, well under this); a runner that dies is replaced once it passes.
RUN_LEASE = timedelta(seconds=60)


@dataclass(frozen=True)
class TickReport:
    planned: int  # daily closes planned or re-planned
    scheduled_closed: int  # conversations closed by daily closes
    idle_closed: int  # conversations closed for being idle
    more: bool  # time ran out with work left (the next tick goes on)


def lifecycle_tick(*, budget: float = 5.0) -> TickReport:
    """The scheduler's tick (every ``LIFECYCLE_INTERVAL``, in UTC).

    1. Plan the daily closes of tenants whose settings are new or changed.
    2. Run the daily closes that are due.
    3. Close the conversations that have been idle too long.

    Steps 2 and 3 stop once ``budget`` seconds have passed; what is left
    stays due, and the next tick goes on with it.
    """
    deadline = time.monotonic() + budget
    planned = daily_closes_plan()
    scheduled, scheduled_more = daily_closes_run(deadline=deadline)
    idle, idle_more = idle_close_sweep(deadline=deadline)
    return TickReport(planned, scheduled, idle, scheduled_more or idle_more)


# --- Daily closes (T-1, T-2) ----------------------------------------------------


def daily_closes_plan() -> int:
    """(Re-)plan the next daily close of every tenant whose plan is missing or stale.

    One query finds them: a tenant with ``daily_close_at`` but no PENDING close
    made with its current time and zone, or a PENDING close for a tenant
    without the setting. Usually it finds none.
    """
    current = ScheduledClose.objects.filter(
        tenant=OuterRef("pk"),
        status=ScheduledClose.Status.PENDING,
        local_time=OuterRef("daily_close_at"),
        time_zone=OuterRef("time_zone"),
    )
    pending = ScheduledClose.objects.filter(
        tenant=OuterRef("pk"), status=ScheduledClose.Status.PENDING
    )
    stale = Tenant.objects.alias(has_current=Exists(current), has_pending=Exists(pending)).filter(
        Q(daily_close_at__isnull=False, has_current=False)
        | Q(daily_close_at__isnull=True, has_pending=True)
    )
    planned = 0
    for tenant in stale.only("id", "time_zone", "daily_close_at"):
        planned += _plan(tenant, now=timezone.now())
    return planned


def _plan(tenant: Tenant, *, now: datetime) -> int:
    """Replace the tenant's PENDING close with the next one its settings give."""
    zone = rules.zone_or_none(tenant.time_zone)
    try:
        with transaction.atomic():
            ScheduledClose.objects.filter(
                tenant=tenant, status=ScheduledClose.Status.PENDING
            ).delete()
            if tenant.daily_close_at is None:
                return 0
            if zone is None:
                # Only a write that bypassed validation stores an unknown
                # zone: there is no local time to close at, so say so.
                log.warning(
                    "daily_close_invalid_time_zone", tenant_id=str(tenant.pk), zone=tenant.time_zone
                )
                return 0
            # Local dates from yesterday on that already have a close.
            today = now.astimezone(zone).date()
            taken = set(
                ScheduledClose.objects.filter(
                    tenant=tenant, local_date__gte=today - timedelta(days=1)
                ).values_list("local_date", flat=True)
            )
            day, cutoff = rules.next_cutoff(
                now=now, at=tenant.daily_close_at, zone=zone, taken=taken
            )
            ScheduledClose.objects.create(
                tenant=tenant,
                local_date=day,
                local_time=tenant.daily_close_at,
                time_zone=tenant.time_zone,
                cutoff_at=cutoff,
                due_at=cutoff,
            )
    except IntegrityError:
        # Another scheduler planned this tenant at the same moment.
        return 0
    log.info("daily_close_planned", tenant_id=str(tenant.pk), local_date=str(day), cutoff=cutoff)
    return 1


def daily_closes_run(*, deadline: float) -> tuple[int, bool]:
    """Run every daily close that is due; (conversations closed, work left)."""
    closed = 0
    due = (
        ScheduledClose.objects.filter(due_at__isnull=False, due_at__lte=timezone.now())
        .order_by("due_at")
        .values_list("pk", flat=True)[: settings.LIFECYCLE_BATCH_SIZE]
    )
    for run_id in list(due):
        if time.monotonic() > deadline:
            return closed, True
        count, finished = daily_close_run(run_id=run_id, deadline=deadline)
        closed += count
        if not finished:
            return closed, True
    return closed, False


def daily_close_run(*, run_id: int, deadline: float | None = None) -> tuple[int, bool]:
    """Claim one due daily close and close what it must; (closed, finished).

    1. Claim: a conditional UPDATE takes the lease; a second scheduler's
       claim of the same row changes nothing and returns (0, True).
    2. Close, ``LIFECYCLE_BATCH_SIZE`` at a time, every conversation of the
       tenant OPEN and created at or before the cut-off: the conversations
       open at the cut-off, even when the tick comes late. Each batch renews
       the lease.
    3. When none is left, the close is DONE. When time is up first, it is
       left due at once, for the next tick.
    """
    now = timezone.now()
    claimed = ScheduledClose.objects.filter(
        pk=run_id,
        status__in=[ScheduledClose.Status.PENDING, ScheduledClose.Status.RUNNING],
        due_at__lte=now,
    ).update(
        status=ScheduledClose.Status.RUNNING,
        due_at=now + RUN_LEASE,
        started_at=Coalesce(F("started_at"), Value(now, output_field=DateTimeField())),
    )
    if not claimed:
        return 0, True
    run = ScheduledClose.objects.get(pk=run_id)
    mine = ScheduledClose.objects.filter(pk=run_id, status=ScheduledClose.Status.RUNNING)
    closed = 0
    failed: set[UUID] = set()
    with bound_contextvars(tenant_id=str(run.tenant_id), local_date=str(run.local_date)):
        while True:
            batch = list(
                Conversation.objects.filter(
                    tenant_id=run.tenant_id,
                    status=Conversation.Status.OPEN,
                    created_at__lte=run.cutoff_at,
                )
                .exclude(pk__in=failed)
                .values_list("pk", flat=True)[: settings.LIFECYCLE_BATCH_SIZE]
            )
            if not batch:
                mine.update(status=ScheduledClose.Status.DONE, due_at=None, finished_at=now)
                log.info("daily_close_done", closed=run.closed_count + closed)
                return closed, True
            count = 0
            for conversation_id in batch:
                if _close(conversation_id, Conversation.CloseReason.SCHEDULED):
                    count += 1
                elif Conversation.objects.filter(pk=conversation_id, status="OPEN").exists():
                    failed.add(conversation_id)
            closed += count
            now = timezone.now()
            out_of_time = deadline is not None and time.monotonic() > deadline
            mine.update(
                closed_count=F("closed_count") + count,
                # Out of time: due again at once, so the next tick resumes it.
                due_at=now if out_of_time else now + RUN_LEASE,
            )
            if out_of_time:
                return closed, False


# --- Idle closes (T-1) -----------------------------------------------------------


def idle_close_sweep(*, deadline: float | None = None) -> tuple[int, bool]:
    """Close every OPEN conversation idle for its tenant's ``idle_close_after``;
    (closed, work left).

    Idle is real elapsed time since the conversation's last message of any
    kind, or else its creation: ``updated_at``, which every message and reply
    moves, in UTC. The tenant's current setting applies, so a new setting
    covers conversations already open. One query per batch finds them, through
    ``conversation_open_activity_idx`` for each tenant with the setting.
    """
    closed = 0
    failed: set[UUID] = set()
    while True:
        now = timezone.now()
        idle_for = ExpressionWrapper(
            Cast("tenant__idle_close_after", IntegerField()) * Value(timedelta(seconds=1)),
            output_field=DurationField(),
        )
        batch = list(
            Conversation.objects.filter(
                status=Conversation.Status.OPEN, tenant__idle_close_after__isnull=False
            )
            .alias(
                idle_since=ExpressionWrapper(
                    Value(now, output_field=DateTimeField()) - idle_for,
                    output_field=DateTimeField(),
                )
            )
            .filter(updated_at__lte=F("idle_since"))
            .exclude(pk__in=failed)
            .values_list("pk", "tenant__idle_close_after")[: settings.LIFECYCLE_BATCH_SIZE]
        )
        for conversation_id, idle_close_after in batch:
            idle_since = now - timedelta(seconds=idle_close_after or 0)
            if _close(conversation_id, Conversation.CloseReason.IDLE, idle_since=idle_since):
                closed += 1
            elif Conversation.objects.filter(
                pk=conversation_id, status="OPEN", updated_at__lte=idle_since
            ).exists():
                failed.add(conversation_id)
        if len(batch) < settings.LIFECYCLE_BATCH_SIZE:
            return closed, False
        if deadline is not None and time.monotonic() > deadline:
            return closed, True


def _close(conversation_id: UUID, reason: str, *, idle_since: datetime | None = None) -> bool:
    """Close one conversation for ``reason``; whether this call closed it.

    For an idle close the conversation is locked and checked first: a message
    that arrived since the sweep read it keeps it open (intake takes the same
    lock, so the two never interleave).
    """
    try:
        with bound_contextvars(conversation_id=str(conversation_id)), transaction.atomic():
            if idle_since is not None:
                still_idle = (
                    Conversation.objects.select_for_update()
                    .filter(pk=conversation_id, status="OPEN", updated_at__lte=idle_since)
                    .exists()
                )
                if not still_idle:
                    return False
            conversation_close(conversation_id=conversation_id, reason=reason)
    except ConversationAlreadyClosed:
        return False  # a manual close, or another sweep, came first
    except Exception:
        log.exception("auto_close_failed", conversation_id=str(conversation_id), reason=reason)
        return False
    return True
