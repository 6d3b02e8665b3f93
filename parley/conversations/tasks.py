"""Thin Celery tasks: they take ids, call a service, and are safe to run twice."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from celery import Task, shared_task
from celery.signals import task_failure, task_prerun
from django.db import close_old_connections
from django.utils import timezone

from parley.conversations import services
from parley.core import metrics

log = structlog.get_logger(__name__)


class GroupReplyTask(Task):
    def schedule(self, group_id: int, eta: datetime | None) -> None:
        """Publish a run at ``eta``. Passing argsrepr skips Celery's repr of the args.

        (The stubs lack the argsrepr/kwargsrepr options, hence the ignore.)
        """
        self.apply_async(  # type: ignore[call-arg]
            args=(group_id,),
            eta=eta or timezone.now(),
            argsrepr=f"({group_id},)",
            kwargsrepr="{}",
        )


@shared_task(base=GroupReplyTask, name="parley.conversations.tasks.group_reply", bind=True)
def group_reply_task(self: GroupReplyTask, group_id: int) -> str:
    """Fast path: runs at the group's due time. If messages moved the due time
    on meanwhile, it schedules itself again for the new one (one task per
    group rather than one per message)."""
    result = services.group_reply(group_id=group_id)
    if result.outcome is services.ReplyOutcome.NOT_DUE:
        self.schedule(group_id, result.due_at)
    return result.outcome.value


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
