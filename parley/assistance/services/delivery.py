"""One attempt of one delivery: claim, send outside any transaction, record (A-5 to A-7, A-10)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from uuid import UUID

import structlog
from django.conf import settings
from django.utils import timezone

from parley.assistance import metrics
from parley.assistance.channels import Notice, Outcome
from parley.assistance.models import Delivery
from parley.assistance.notices import Target, notice_for, target_for
from parley.assistance.ratelimit import rate_acquire
from parley.assistance.redaction import describe
from parley.assistance.services._common import DUE, database_functions, kick
from parley.assistance.services.record import (
    AttemptReport,
    Step,
    attempt_record,
    attempts_record,
)
from parley.core.duework import claim_due, claim_one

log = structlog.get_logger(__name__)


PENDING_OR_DUE = (f"{DUE.column('status')} = %s", [Delivery.Status.PENDING])


def delivery_attempt(
    *, delivery_id: UUID | str, lease_token: UUID | str | None = None
) -> AttemptReport:
    """Make one attempt of one delivery, if it is this runner's to make.

    Without ``lease_token`` it first claims the delivery: a PENDING one, or
    a QUEUED one that is due, with a conditional UPDATE that also starts a
    lease. A runner that does not hold the lease returns SKIPPED: a task run
    twice, or a sweep racing a task, sends once. Then as :func:`deliveries_run`.
    """
    if lease_token is None:
        claim = claim_one(
            DUE,
            delivery_id,
            now=timezone.now(),
            lease=settings.ASSISTANCE_LEASE,
            also_when=PENDING_OR_DUE,
            set_values={"status": Delivery.Status.QUEUED},
        )
        if claim is None:
            return AttemptReport(Step.SKIPPED)
        token = claim.token
    else:
        token = UUID(str(lease_token))
    reports = deliveries_run(pks=[delivery_id], token=token)
    return reports[0] if reports else AttemptReport(Step.SKIPPED)


def deliveries_pending_run(*, budget: float = 5.0) -> int:
    """Deliver every PENDING (and due) delivery, a batch at a time; how many were attempted.

    What the task published after a request's commit runs: a burst of
    requests becomes a few batches, each claimed in one UPDATE, sent
    concurrently and recorded together. It stops when nothing is
    left, or after ``budget`` seconds (then it publishes itself again).
    """
    started = time.monotonic()
    done = 0
    while True:
        claim = claim_due(
            DUE,
            now=timezone.now(),
            lease=settings.ASSISTANCE_LEASE,
            limit=settings.ASSISTANCE_SEND_CONCURRENCY,
            also_when=PENDING_OR_DUE,
            set_values={"status": Delivery.Status.QUEUED},
        )
        if not claim.pks:
            return done
        done += len(deliveries_run(pks=claim.pks, token=claim.token))
        if time.monotonic() - started > budget:
            kick()
            return done


def deliveries_run(*, pks: Sequence[UUID | str], token: UUID) -> list[AttemptReport]:
    """Attempt the claimed deliveries ``pks`` whose lease ``token`` holds.

    1. Load them with their channels (one query); one whose lease passed to
       another runner, or that is settled, is left alone.
    2. The channel's rate limit (A-10): over it, a delivery is put off until
       its send fits; no attempt is made or counted.
    3. Send, outside any transaction, concurrently (a thread each, up to
       ``ASSISTANCE_SEND_CONCURRENCY``): one call each, with the delivery's id
       as its key (A-6); a kind returns an Outcome and never sleeps.
    4. Record them (:mod:`parley.assistance.services.record`).
    """
    rows = Delivery.objects.select_related("channel").filter(
        pk__in=list(pks), lease_token=token, status__in=Delivery.LIVE
    )
    reports: list[AttemptReport] = []
    ready: list[tuple[Delivery, Target, Notice]] = []
    now = timezone.now()
    for delivery in rows:
        prepared = _prepare(delivery, token, now)
        if isinstance(prepared, AttemptReport):
            reports.append(prepared)
        else:
            ready.append((delivery, *prepared))
    if len(ready) == 1:
        results = [_send_timed(ready[0][1], ready[0][2])]
    else:
        results = list(_pool().map(lambda job: _send_timed(job[1], job[2]), ready))
    done = {}
    if database_functions() and len(ready) > 1:
        items = [
            (job[0], result[0], result[1], result[2])
            for job, result in zip(ready, results, strict=True)
        ]
        done = attempts_record(items, token)
    for (delivery, target, _), (outcome, started, ended) in zip(ready, results, strict=True):
        report = done.get(delivery.pk)
        if report is None:
            report = attempt_record(
                delivery, token, outcome, started=started, ended=ended, kind=target.kind.name
            )
        reports.append(report)
    return reports


def _prepare(
    delivery: Delivery, token: UUID, now: datetime
) -> AttemptReport | tuple[Target, Notice]:
    """Where it goes and what it says; or the report of why it is not sent now."""
    found = target_for(delivery)
    if isinstance(found, Outcome):
        return attempt_record(delivery, token, found, started=now, ended=now, kind=None)
    if found.channel is not None:
        wait_until = rate_acquire(
            found.channel, rate=found.rate_per_second, burst=found.burst, now=now
        )
        if wait_until is not None:
            return _defer(delivery, token, wait_until, found)
    notice = notice_for(delivery)
    if isinstance(notice, Outcome):
        return attempt_record(delivery, token, notice, started=now, ended=now, kind=found.kind.name)
    return found, notice


_pool_state: list[tuple[int, ThreadPoolExecutor]] = []


def _pool() -> ThreadPoolExecutor:
    """This process's send threads (a new pool after a fork)."""
    if not _pool_state or _pool_state[0][0] != os.getpid():
        _pool_state[:] = [
            (
                os.getpid(),
                ThreadPoolExecutor(
                    max_workers=settings.ASSISTANCE_SEND_CONCURRENCY,
                    thread_name_prefix="assistance-send",
                ),
            )
        ]
    return _pool_state[0][1]


def _send_timed(target: Target, notice: Notice) -> tuple[Outcome, datetime, datetime]:
    started = timezone.now()
    return _send(target, notice), started, timezone.now()


def _send(target: Target, notice: Notice) -> Outcome:
    """The kind's send; anything it raises (a bug, a time limit) is a retryable failure."""
    try:
        return target.kind.send(notice, target.config)
    except Exception as exc:
        return Outcome.retryable(describe(exc, target.kind.secrets(target.config)))


def _defer(delivery: Delivery, token: UUID, until: datetime, target: Target) -> AttemptReport:
    """Put the send off until the rate limit allows it: due then, lease released."""
    Delivery.objects.filter(pk=delivery.pk, lease_token=token, status__in=Delivery.LIVE).update(
        next_attempt_at=until, lease_token=None, updated_at=timezone.now()
    )
    metrics.DEFERRED.labels(kind=target.kind.name).inc()
    log.info(
        "assistance_deferred",
        request_id=str(delivery.pk),
        channel=target.name,
        until=until.isoformat(),
    )
    return AttemptReport(Step.DEFERRED)
