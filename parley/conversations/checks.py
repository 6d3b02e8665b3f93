"""System checks: timing settings that would break exactly-once silently."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register


@register()
def check_timing_settings(app_configs: Any, **kwargs: Any) -> list[Error]:
    errors = []
    hard_limit = settings.CELERY_TASK_TIME_LIMIT
    if hard_limit >= settings.CELERY_VISIBILITY_TIMEOUT:
        errors.append(
            Error(
                "CELERY_VISIBILITY_TIMEOUT must exceed the task time limit, or Redis "
                "redelivers a task that is still running.",
                id="parley.E001",
            )
        )
    if settings.REPLY_LEASE.total_seconds() <= hard_limit:
        errors.append(
            Error(
                "REPLY_LEASE_SECONDS must exceed CELERY_TASK_TIME_LIMIT, or the sweeper "
                "could start a second writer while the first is still running.",
                id="parley.E002",
            )
        )
    if hard_limit <= settings.CELERY_TASK_SOFT_TIME_LIMIT:
        errors.append(Error("CELERY_TASK_TIME_LIMIT must exceed the soft limit.", id="parley.E003"))
    return errors
