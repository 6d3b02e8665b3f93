"""Thin Celery tasks, run by the scheduler every ``LIFECYCLE_INTERVAL``; safe to run twice."""

from __future__ import annotations

import time

from celery import shared_task

from parley.lifecycle import services

# Each run stops after this much work, well inside the task's soft time
# limit; what is left stays due for the next run.
BUDGET_SECONDS = 5.0


@shared_task(name="parley.lifecycle.tasks.tick")
def tick() -> dict[str, int | bool]:
    report = services.lifecycle_tick(budget=BUDGET_SECONDS)
    return {
        "planned": report.planned,
        "scheduled_closed": report.scheduled_closed,
        "idle_closed": report.idle_closed,
        "more": report.more,
    }


@shared_task(name="parley.lifecycle.tasks.archive")
def archive() -> dict[str, int | bool]:
    archived, more = services.transcripts_archive_sweep(deadline=time.monotonic() + BUDGET_SECONDS)
    return {"archived": archived, "more": more}
