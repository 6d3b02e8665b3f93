"""Thin Celery tasks: they take ids, call a service, and are safe to run twice."""

from __future__ import annotations

from uuid import UUID

from celery import shared_task
from django.conf import settings

from parley.assistance import services
from parley.assistance.services._common import kick_received

# A send waits at most ASSISTANCE_TIMEOUT_SECONDS per network operation, and an
# SMTP send makes a few; a batch's sends run at once (ASSISTANCE_SEND_CONCURRENCY
# threads, no more rows than threads): the limits leave room for them. The
# lease must outlast the hard limit (checks.py), so that a task still running
# is never raced.
SOFT_TIME_LIMIT = int(3 * settings.ASSISTANCE_TIMEOUT_SECONDS) + 5
HARD_TIME_LIMIT = SOFT_TIME_LIMIT + 5


@shared_task(
    name="parley.assistance.tasks.deliver_pending",
    soft_time_limit=SOFT_TIME_LIMIT,
    time_limit=HARD_TIME_LIMIT,
)
def deliver_pending() -> int:
    """Published after a request commits: deliver everything pending, a batch at a time."""
    kick_received()
    return services.deliveries_pending_run()


@shared_task(
    name="parley.assistance.tasks.deliver_batch",
    soft_time_limit=SOFT_TIME_LIMIT,
    time_limit=HARD_TIME_LIMIT,
)
def deliver_batch(delivery_ids: list[str], lease_token: str) -> int:
    """One batch the sweep claimed (its token): attempt each."""
    return len(services.deliveries_run(pks=delivery_ids, token=UUID(lease_token)))


@shared_task(name="parley.assistance.tasks.sweep")
def sweep() -> dict[str, int]:
    report = services.assistance_sweep()
    return {
        "claimed": report.claimed,
        "replies_queued": report.replies_queued,
        "keys_pruned": report.keys_pruned,
    }
