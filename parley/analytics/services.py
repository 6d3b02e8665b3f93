"""The analytics exporter (T-4): the outbox, as CloudEvents JSON lines in the object store.

Every event lands in exactly one object, even when the exporter dies between
writing and marking, because a batch's bounds are fixed before anything is
written (``models``) and its objects are a function of those bounds:

1. Fix: take the PENDING batch if a run died with one; else read up to
   ``ANALYTICS_EXPORT_BATCH_SIZE`` events after the cursor and record the
   span (after, upto) as a PENDING batch. Nothing else is in the database
   until this commits.
2. Write: read the span again (the same events: its positions are final),
   and put one object per type and UTC day (``lines``), replacing any
   object of the same name, which can only hold the same bytes.
3. Mark: the batch becomes DONE and the cursor moves to its end, in one
   transaction.

A run that dies after 1 or during 2 leaves the batch PENDING: the next run
starts at 1 with it and writes the same names with the same bytes. A run
that dies after 3 has nothing left to redo. Two exporters at once are
harmless (step 1's unique constraints let one batch exist per start and one
PENDING at a time; step 3 is conditional), and a session lock keeps them
from doing the same work twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from parley.analytics import lines
from parley.analytics.models import ExportBatch
from parley.core.db import ANALYTICS_EXPORT_LOCK_KEY, singleton_lock
from parley.core.objectstore import object_store
from parley.outbox import selectors as outbox
from parley.outbox.models import OutboxCursor
from parley.outbox.services import cursor_advance

log = structlog.get_logger(__name__)

# The exporter's durable cursor (created by migration 0002 of this app, so
# the outbox's retention never deletes an event it has not exported).
CURSOR = "analytics"


@dataclass(frozen=True)
class ExportReport:
    batches: int = 0
    events: int = 0  # outbox events read
    exported: int = 0  # of them, CloudEvents written
    files: int = 0
    more: bool = False  # time ran out with events left
    ran: bool = True  # False: another exporter was running


def analytics_export(*, deadline: float | None = None) -> ExportReport:
    """Export batches until the outbox is caught up, or ``deadline`` (monotonic) passes."""
    batches = events = exported = files = 0
    with singleton_lock(ANALYTICS_EXPORT_LOCK_KEY) as acquired:
        if not acquired:
            return ExportReport(ran=False)
        while True:
            batch = export_batch_fix()
            if batch is None:
                return ExportReport(batches, events, exported, files)
            objects = export_batch_write(batch)
            export_batch_mark(batch, objects)
            batches += 1
            events += batch.events
            exported += sum(body.count(b"\n") for body in objects.values())
            files += len(objects)
            if deadline is not None and time.monotonic() > deadline:
                return ExportReport(batches, events, exported, files, more=True)


def export_batch_fix() -> ExportBatch | None:
    """Step 1: the batch to write, PENDING in the database; None when nothing is new."""
    for _ in range(3):
        pending = ExportBatch.objects.filter(status=ExportBatch.Status.PENDING).first()
        if pending is not None:
            return pending
        cursor, _ = OutboxCursor.objects.get_or_create(name=CURSOR)
        after = (cursor.txid, cursor.event_id)
        events = outbox.events_after(after, limit=settings.ANALYTICS_EXPORT_BATCH_SIZE)
        if not events:
            return None
        upto = events[-1].position
        try:
            with transaction.atomic():
                return ExportBatch.objects.create(
                    after_txid=after[0],
                    after_id=after[1],
                    upto_txid=upto[0],
                    upto_id=upto[1],
                    events=len(events),
                )
        except IntegrityError:
            continue  # another exporter fixed one first: take it, or read on from it
    return None


def export_batch_write(batch: ExportBatch) -> dict[str, bytes]:
    """Step 2: put the batch's objects; returns them (name -> bytes)."""
    events = outbox.events_after(batch.after, limit=batch.events)
    if len(events) != batch.events or events[-1].position != batch.upto:
        # Only deleting outbox rows by hand past the cursor could do this.
        raise RuntimeError(f"outbox events of export batch {batch.pk} are missing")
    objects = lines.objects(events)
    store = object_store()
    for name, body in objects.items():
        store.put(name, body)
    return objects


def export_batch_mark(batch: ExportBatch, objects: dict[str, bytes]) -> bool:
    """Step 3: the batch is DONE and the cursor past it; False if another run marked it."""
    with transaction.atomic():
        marked = ExportBatch.objects.filter(pk=batch.pk, status=ExportBatch.Status.PENDING).update(
            status=ExportBatch.Status.DONE,
            exported_at=timezone.now(),
            exported=sum(body.count(b"\n") for body in objects.values()),
            files=sorted(objects),
        )
        if marked:
            cursor_advance(name=CURSOR, position=batch.upto)
    if marked:
        log.info(
            "analytics_batch_exported", batch=batch.pk, events=batch.events, files=len(objects)
        )
    return bool(marked)


def export_batches_prune() -> int:
    """Delete DONE batches older than the outbox's retention (their events are gone too)."""
    deleted, _ = ExportBatch.objects.filter(
        status=ExportBatch.Status.DONE,
        created_at__lt=timezone.now() - settings.OUTBOX_RETENTION,
    ).delete()
    return deleted
