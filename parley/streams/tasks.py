"""Thin Celery tasks of the streams."""

from __future__ import annotations

from celery import shared_task

from parley.streams import services


@shared_task(name="parley.streams.tasks.sweep")
def sweep() -> dict[str, int]:
    """Close the streams whose time is up (X-8), then prune what the retention lets go.

    Starts and requests close the expired streams of the key they touch as
    they go; this closes the others, so their ``stream.closed`` events come
    within ``STREAMS_SWEEP_SECONDS``. Safe to run twice, or at once.
    """
    expired = services.streams_expire()
    pruned = services.streams_prune()
    return {"expired": expired, **pruned}
