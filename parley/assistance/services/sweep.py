"""The sweep: what is due goes to a worker; pushed replies come from the outbox (A-6, A-11)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from parley.assistance.models import Delivery, IdempotencyKey
from parley.assistance.services._common import DUE
from parley.conversations.events import REPLY_SENT
from parley.core.db import singleton_lock
from parley.core.duework import claim_due
from parley.outbox import selectors as outbox
from parley.outbox.models import OutboxCursor
from parley.outbox.services import cursor_advance

log = structlog.get_logger(__name__)

# The outbox reader that turns reply.sent events into pushes.
REPLY_PUSH_READER = "assistance.reply-push"
# parley.core.db's session lock keys: the reply sweeper has 1.
REPLY_PUSH_LOCK_KEY = 2
PRUNE_EVERY_SECONDS = 60.0
_last_prune = [0.0]


@dataclass(frozen=True)
class SweepReport:
    claimed: int
    replies_queued: int
    keys_pruned: int


def assistance_sweep(*, budget: float = 5.0) -> SweepReport:
    """Run by the scheduler every ``ASSISTANCE_SWEEP_INTERVAL``.

    1. New replies become deliveries (when ``REPLY_WEBHOOK_URL`` is set).
    2. Claim what is due and not leased, ``ASSISTANCE_SWEEP_BATCH_SIZE`` at a
       time (``parley.core.duework.claim_due``: concurrent sweeps take
       disjoint rows), and hand each to a task with the claim's token, so
       slow channels are sent to in parallel by every worker process. A task
       that is lost (a flushed broker, a killed worker) leaves its delivery
       leased until the lease ends; the sweep after that claims it again.
    3. Once a minute, delete idempotency keys older than 24 h (A-8).
    """
    from parley.assistance.tasks import deliver_batch

    queued = reply_push_pump()
    started = time.monotonic()
    claimed = 0
    while True:
        claim = claim_due(
            DUE,
            now=timezone.now(),
            lease=settings.ASSISTANCE_LEASE,
            limit=settings.ASSISTANCE_SWEEP_BATCH_SIZE,
            set_values={"status": Delivery.Status.QUEUED},
        )
        size = settings.ASSISTANCE_SEND_CONCURRENCY
        for start in range(0, len(claim.pks), size):
            batch = [str(pk) for pk in claim.pks[start : start + size]]
            try:
                deliver_batch.apply_async((batch, str(claim.token)), retry=False)
            except Exception:
                log.exception("assistance_publish_failed", request_ids=batch)
        claimed += len(claim.pks)
        if len(claim.pks) < settings.ASSISTANCE_SWEEP_BATCH_SIZE:
            break
        if time.monotonic() - started > budget:
            break
    return SweepReport(claimed=claimed, replies_queued=queued, keys_pruned=_prune_keys())


def _prune_keys() -> int:
    if time.monotonic() - _last_prune[0] < PRUNE_EVERY_SECONDS:
        return 0
    _last_prune[0] = time.monotonic()
    cutoff = timezone.now() - settings.ASSISTANCE_IDEMPOTENCY_TTL
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()
    return deleted


def reply_push_pump(*, limit: int = 500, budget: float = 2.0) -> int:
    """Turn the outbox's ``reply.sent`` events into reply deliveries (A-11); how many were new.

    A durable outbox reader: its cursor and the deliveries it creates commit
    together, and a delivery's id is the reply's id, so reading an event
    twice (a crash between the two) creates nothing twice. The hot path of
    replies stays as it is: it already writes the event. The first run with
    ``REPLY_WEBHOOK_URL`` set starts at the outbox's present: replies written
    before the push was configured are not pushed. One pump at a time (a
    session lock on PostgreSQL).
    """
    if not settings.REPLY_WEBHOOK_URL:
        return 0
    created = 0
    with singleton_lock(REPLY_PUSH_LOCK_KEY) as acquired:
        if not acquired:
            return 0
        cursor = OutboxCursor.objects.filter(name=REPLY_PUSH_READER).first()
        if cursor is None:
            cursor_advance(name=REPLY_PUSH_READER, position=outbox.current_position())
            return 0
        position = (cursor.txid, cursor.event_id)
        started = time.monotonic()
        while time.monotonic() - started < budget:
            batch = outbox.events_after(position, limit=limit)
            if not batch:
                break
            now = timezone.now()
            rows = [
                Delivery(
                    id=event.data["message_id"],
                    purpose=Delivery.Purpose.REPLY,
                    conversation_id=event.data.get("conversation_id"),
                    tenant_id=event.tenant_id,
                    status=Delivery.Status.PENDING,
                    max_attempts=len(settings.ASSISTANCE_RETRY_SCHEDULE),
                    next_attempt_at=now,
                    created_at=now,
                    updated_at=now,
                )
                for event in batch
                if event.type == REPLY_SENT
            ]
            position = batch[-1].position
            with transaction.atomic():
                made = Delivery.objects.bulk_create(rows, ignore_conflicts=True)
                cursor_advance(name=REPLY_PUSH_READER, position=position)
            created += len(made)
            if len(batch) < limit:
                break
    return created
