"""Thin Celery tasks of the queue intake."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from parley.intake import services


@shared_task(ignore_result=True)
def inbox_prune() -> int:
    """Forget applied events older than INTAKE_INBOX_RETENTION_DAYS (hourly, from beat)."""
    return services.inbox_prune(older_than_days=settings.INTAKE_INBOX_RETENTION_DAYS)
