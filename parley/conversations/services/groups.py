"""Groups: where an arriving message goes (G-1), closing a group, scheduling its reply."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import structlog
from django.conf import settings
from django.db import transaction

from parley.conversations import rules
from parley.conversations.models import MessageGroup
from parley.conversations.services._common import (
    group_field,
)
from parley.core import sql

log = structlog.get_logger(__name__)


_SELECT_OPEN_GROUP = f"""
    SELECT * FROM {MessageGroup._meta.db_table} WHERE conversation_id = %s AND status = 'OPEN'
"""  # noqa: S608
_EXTEND_GROUP = f"""
    UPDATE {MessageGroup._meta.db_table} SET last_message_at = %s, reply_due_at = %s WHERE id = %s
"""  # noqa: S608


def group_for_arrival(conversation_id: UUID, *, arrival: datetime, now: datetime) -> MessageGroup:
    """The group a message arriving at ``arrival`` belongs to (G-1). Caller holds the lock.

    1. The OPEN group takes it if it arrives before the group closes; the
       group's due time moves to the new trailing edge.
    2. An OPEN group whose window has passed, but whose reply has not run yet,
       is closed here, due now.
    3. Otherwise the message starts a new group, due a window later.

    The sweeper answers each group once it is due.
    """
    window, max_wait = settings.GROUP_WINDOW, settings.GROUP_MAX_WAIT
    open_groups = MessageGroup.objects.raw(
        _SELECT_OPEN_GROUP, sql.adapt([(group_field("conversation"), conversation_id)])
    )
    group = next(iter(open_groups), None)
    if group is not None:
        assert group.reply_due_at is not None
        if rules.joins_group(arrival=arrival, group_reply_due_at=group.reply_due_at):
            group.last_message_at = arrival
            group.reply_due_at = rules.group_reply_due_at(
                opened_at=group.opened_at, last_message_at=arrival, window=window, max_wait=max_wait
            )
            sql.execute(
                _EXTEND_GROUP,
                [
                    (group_field("last_message_at"), group.last_message_at),
                    (group_field("reply_due_at"), group.reply_due_at),
                    (group_field("id"), group.pk),
                ],
            )
            return group
        group_close(group, now=now)
    group = MessageGroup.objects.create(
        conversation_id=conversation_id,
        status=MessageGroup.Status.OPEN,
        opened_at=arrival,
        last_message_at=arrival,
        reply_due_at=rules.group_reply_due_at(
            opened_at=arrival, last_message_at=arrival, window=window, max_wait=max_wait
        ),
    )
    return group


def group_close(group: MessageGroup, *, now: datetime) -> None:
    """Stop a group collecting and make its reply due now. Caller holds the lock."""
    group.status = MessageGroup.Status.CLOSED
    group.closed_at = now
    group.reply_due_at = now
    group.save(update_fields=["status", "closed_at", "reply_due_at"])


def schedule_reply(group_id: int) -> None:
    """Run the group's reply now, in a task published once the transaction commits.

    A broker that is down must not fail a request whose data is committed:
    the error is logged, and the next sweep answers the group, which is due.
    """
    from parley.conversations.tasks import group_reply_task

    def publish() -> None:
        try:
            group_reply_task.delay(group_id)
        except Exception:
            log.exception("reply_publish_failed", group_id=group_id)

    transaction.on_commit(publish)
