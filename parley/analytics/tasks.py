"""Thin Celery task, run by the scheduler every ``ANALYTICS_EXPORT_SECONDS``."""

from __future__ import annotations

import time

from celery import shared_task

from parley.analytics import services
from parley.outbox.services import events_prune

# One run stops after this much work, well inside the task's soft time limit,
# and queues the next run at once while events are left.
BUDGET_SECONDS = 5.0


@shared_task(name="parley.analytics.tasks.export")
def export() -> dict[str, int | bool]:
    report = services.analytics_export(deadline=time.monotonic() + BUDGET_SECONDS)
    if report.more:
        export.delay()
    elif report.ran:
        # Caught up: drop what every durable reader has read and retention allows.
        events_prune()
        services.export_batches_prune()
    return {
        "batches": report.batches,
        "events": report.events,
        "exported": report.exported,
        "files": report.files,
        "more": report.more,
    }
