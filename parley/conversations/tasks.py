"""Thin Celery tasks: they take ids, call a service, and are safe to run twice."""

from __future__ import annotations

from typing import Any

import structlog
from celery import shared_task
from celery.signals import task_failure, task_prerun
from django.db import close_old_connections

from parley.conversations import services
from parley.core import metrics

log = structlog.get_logger(__name__)


@shared_task(name="parley.conversations.tasks.group_reply")
def group_reply_task(group_id: int) -> str:
    """Answer one group now (CLOSE_CONVERSATION's G-5). Every other reply is
    the sweeper's; a group that is not due is left to it."""
    return services.group_reply(group_id=group_id).outcome.value


@shared_task(name="parley.conversations.tasks.sweep")
def sweep() -> dict[str, int]:
    report = services.due_work_sweep()
    return {"orphans_expired": report.orphans_expired, "groups_replied": report.groups_replied}


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
