"""Thin Celery tasks: they take ids, call a service, and are safe to run twice."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from parley.assistance import services

# A send waits at most ASSISTANCE_TIMEOUT_SECONDS per network operation, and an
# SMTP send makes a few: the limits leave room for them. The lease must outlast
# the hard limit (checks.py), so a task that is still running is never raced.
SOFT_TIME_LIMIT = int(3 * settings.ASSISTANCE_TIMEOUT_SECONDS) + 5
HARD_TIME_LIMIT = SOFT_TIME_LIMIT + 5


@shared_task(
    name="parley.assistance.tasks.deliver",
    soft_time_limit=SOFT_TIME_LIMIT,
    time_limit=HARD_TIME_LIMIT,
)
def deliver(delivery_id: str, lease_token: str | None = None) -> str:
    """One attempt of a delivery: published after commit (no token) or by the sweep (its token)."""
    return services.delivery_attempt(delivery_id=delivery_id, lease_token=lease_token).step.value


@shared_task(name="parley.assistance.tasks.sweep")
def sweep() -> dict[str, int]:
    report = services.assistance_sweep()
    return {
        "claimed": report.claimed,
        "replies_queued": report.replies_queued,
        "keys_pruned": report.keys_pruned,
    }
