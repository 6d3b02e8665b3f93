"""Thin Celery tasks: they take ids, call a service, and are safe to run twice."""

from __future__ import annotations

from typing import Any

import structlog
from celery import shared_task
from celery.signals import task_failure, task_prerun
from django.db import close_old_connections

from parley.conversations import services
from parley.conversations.services.runner import runner_time_limits, runners_start
from parley.core import metrics

log = structlog.get_logger(__name__)

_RUNNER_SOFT_LIMIT, _RUNNER_HARD_LIMIT = runner_time_limits()
_ONE_GROUP_SOFT_LIMIT, _ONE_GROUP_HARD_LIMIT = services.one_group_time_limits()


@shared_task(
    name="parley.conversations.tasks.group_reply",
    soft_time_limit=_ONE_GROUP_SOFT_LIMIT,
    time_limit=_ONE_GROUP_HARD_LIMIT,
)
def group_reply_task(group_id: int) -> str:
    """Answer one group now (CLOSE_CONVERSATION's G-5). Every other reply is
    the sweeper's or a runner's; a group that is not due is left to them."""
    return services.group_reply(group_id=group_id).outcome.value


@shared_task(
    name="parley.conversations.tasks.reply_runner",
    soft_time_limit=_RUNNER_SOFT_LIMIT,
    time_limit=_RUNNER_HARD_LIMIT,
)
def reply_runner_task() -> dict[str, int]:
    """Claim, write and record due groups for up to REPLY_RUNNER_SECONDS (G-8)."""
    # When its budget ends with work left, a successor takes over.
    report = services.replies_run(handover=lambda: runners_start(1))
    return {"replied": report.replied, "failed_attempts": report.failed_attempts}


@shared_task(name="parley.conversations.tasks.sweep")
def sweep() -> dict[str, int]:
    report = services.due_work_sweep()
    return {
        "orphans_expired": report.orphans_expired,
        "groups_replied": report.groups_replied,
        "runners_started": report.runners_started,
    }


@task_prerun.connect
def _bind_task_context(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(task_id=task_id, task=getattr(task, "name", None))
    # What Django does at the start of each request: drop a connection that
    # broke or outlived CONN_MAX_AGE, and keep the others. (Celery's Django
    # fixup closes every connection around each task unless CELERY_DB_REUSE_MAX
    # is set; with it set, this is what still retires bad connections.)
    close_old_connections()


@task_failure.connect
def _count_failure(sender: Any = None, exception: BaseException | None = None, **_: Any) -> None:
    name = getattr(sender, "name", "unknown")
    metrics.TASK_FAILURES.labels(task=name).inc()
    log.error("task_failed", error=repr(exception))
