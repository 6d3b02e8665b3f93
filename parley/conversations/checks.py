"""System checks: timing settings that would break exactly-once silently, and a writer
that cannot run."""

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


@register()
def check_reply_writer_settings(app_configs: Any, **kwargs: Any) -> list[Error]:
    """G-8: a writer call must end (or be given up) inside its group's lease, and a
    runner task inside the visibility timeout."""
    from parley.conversations.services import one_group_time_limits
    from parley.conversations.services.runner import (
        TIME_LIMIT_MARGIN_SECONDS,
        runner_time_limits,
    )

    errors = []
    timeout = settings.REPLY_WRITER_TIMEOUT.total_seconds()
    if settings.REPLY_LEASE.total_seconds() < timeout + TIME_LIMIT_MARGIN_SECONDS:
        errors.append(
            Error(
                f"REPLY_LEASE_SECONDS must exceed REPLY_WRITER_TIMEOUT_SECONDS by at least "
                f"{TIME_LIMIT_MARGIN_SECONDS:g} s, or a runner could claim a group whose "
                "writer call is still within its time limit.",
                id="parley.E004",
            )
        )
    runner_hard = runner_time_limits()[1]
    one_group_hard = one_group_time_limits()[1]
    if max(runner_hard, one_group_hard) >= settings.CELERY_VISIBILITY_TIMEOUT:
        errors.append(
            Error(
                f"CELERY_VISIBILITY_TIMEOUT must exceed the reply tasks' time limits "
                f"({max(runner_hard, one_group_hard):g} s: REPLY_RUNNER_SECONDS plus "
                "REPLY_WRITER_TIMEOUT_SECONDS plus margins), or Redis redelivers a runner "
                "that is still running.",
                id="parley.E005",
            )
        )
    if settings.REPLY_RUNNER not in ("auto", "sweep", "tasks"):
        errors.append(
            Error(
                f"REPLY_RUNNER must be auto, sweep or tasks, not {settings.REPLY_RUNNER!r}.",
                id="parley.E006",
            )
        )
    positive = {
        "REPLY_WRITER_TIMEOUT_SECONDS": timeout,
        "REPLY_MAX_ATTEMPTS": settings.REPLY_MAX_ATTEMPTS,
        "REPLY_ASYNC_CONCURRENCY": settings.REPLY_ASYNC_CONCURRENCY,
        "REPLY_RUNNER_SECONDS": settings.REPLY_RUNNER_SECONDS,
        "REPLY_RUNNER_BURST": settings.REPLY_RUNNER_BURST,
        "REPLY_RETRY_BACKOFF_SECONDS": settings.REPLY_RETRY_BACKOFF.total_seconds(),
    }
    for name, value in positive.items():
        if value <= 0:
            errors.append(Error(f"{name} must be positive.", id="parley.E007"))
    if settings.REPLY_CONTEXT_MESSAGES < 0:
        errors.append(Error("REPLY_CONTEXT_MESSAGES must be 0 or more.", id="parley.E007"))
    if settings.REPLY_RETRY_BACKOFF_MAX < settings.REPLY_RETRY_BACKOFF:
        errors.append(
            Error(
                "REPLY_RETRY_BACKOFF_MAX_SECONDS must be at least REPLY_RETRY_BACKOFF_SECONDS.",
                id="parley.E007",
            )
        )
    errors += _check_writer()
    return errors


def _check_writer() -> list[Error]:
    from parley.conversations.replies import get_reply_writer

    try:
        get_reply_writer()
    except (ImportError, TypeError) as exc:
        return [
            Error(
                f"REPLY_WRITER {settings.REPLY_WRITER!r} cannot be used: {exc}",
                hint="A dotted path to a function (or async function) taking a ReplyRequest.",
                id="parley.E008",
            )
        ]
    return []
