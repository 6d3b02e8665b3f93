"""What a writer gets for each claimed group (G-7, G-8): its messages and the conversation so far.

A claimed group is CLOSED, so its messages no longer change. Its history is
the conversation's latest ``REPLY_CONTEXT_MESSAGES`` messages that are not in
this group or a later one (the user's earlier messages, earlier replies and
agents' messages), oldest first, in the read API's order (R-1). On PostgreSQL
one query reads every group of a batch (the group's messages by the foreign
key's index, the history by a backward scan of the conversation's message
index that stops after the limit); elsewhere two queries per group.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Q

from parley.conversations.models import Message
from parley.conversations.replies import (
    ContextMessage,
    InboundMessage,
    ReplyRequest,
    history_limit,
)
from parley.conversations.services._common import MESSAGE_TABLE, database_functions
from parley.conversations.services.replies import Claimed

# Rows: (group_id, own message?, id, type, content, timestamp), each group's
# own messages then its history, both in R-1 order.
_OWN = f"""
    SELECT c.group_id, true AS own, m.id, m.type, m.content, m.timestamp, m.received_at
    FROM unnest(%s::bigint[]) AS c (group_id)
    JOIN {MESSAGE_TABLE} m ON m.group_id = c.group_id
"""  # noqa: S608  (table name from the model)
_HISTORY = f"""
    SELECT c.group_id, false, h.id, h.type, h.content, h.timestamp, h.received_at
    FROM unnest(%s::bigint[], %s::uuid[]) AS c (group_id, conversation_id)
    CROSS JOIN LATERAL (
        SELECT m.id, m.type, m.content, m.timestamp, m.received_at
        FROM {MESSAGE_TABLE} m
        WHERE m.conversation_id = c.conversation_id
          AND (m.group_id < c.group_id
               OR (m.group_id IS NULL AND (m.reply_to_id IS NULL OR m.reply_to_id < c.group_id)))
        ORDER BY m.timestamp DESC, m.received_at DESC, m.id DESC
        LIMIT %s
    ) h
"""  # noqa: S608
_ORDER = " ORDER BY 1, 2 DESC, 6, 7, 3"


def reply_requests(claimed: Sequence[Claimed]) -> list[ReplyRequest]:
    """One request per claimed group, in the order given."""
    if not claimed:
        return []
    limit = history_limit()
    if database_functions():
        own, history = _read_batch(claimed, limit)
    else:
        own, history = _read_each(claimed, limit)
    return [
        ReplyRequest(
            conversation_id=c.conversation_id,
            group_id=c.group_id,
            messages=own.get(c.group_id, []),
            language=settings.REPLY_LANGUAGE,
            history=history.get(c.group_id, []),
            tenant_id=c.tenant_id,
            attempt=c.attempts,
        )
        for c in claimed
    ]


_Read = tuple[dict[int, list[InboundMessage]], dict[int, list[ContextMessage]]]


def _read_batch(claimed: Sequence[Claimed], limit: int) -> _Read:
    group_ids = [c.group_id for c in claimed]
    params: list[Any] = [group_ids]
    query = _OWN
    if limit:
        query += " UNION ALL " + _HISTORY
        params += [group_ids, [c.conversation_id for c in claimed], limit]
    own: dict[int, list[InboundMessage]] = {}
    history: dict[int, list[ContextMessage]] = {}
    with connection.cursor() as cursor:
        cursor.execute(query + _ORDER, params)
        for group_id, is_own, message_id, kind, content, timestamp, _ in cursor.fetchall():
            if is_own:
                own.setdefault(group_id, []).append(InboundMessage(message_id, content, timestamp))
            else:
                history.setdefault(group_id, []).append(
                    ContextMessage(message_id, kind, content, timestamp)
                )
    return own, history


def _read_each(claimed: Sequence[Claimed], limit: int) -> _Read:
    own: dict[int, list[InboundMessage]] = {}
    history: dict[int, list[ContextMessage]] = {}
    order = ("timestamp", "received_at", "id")
    for c in claimed:
        rows = Message.objects.filter(group_id=c.group_id).order_by(*order)
        own[c.group_id] = [InboundMessage(m.id, m.content, m.timestamp) for m in rows]
        if limit:
            earlier = (
                Message.objects.filter(conversation_id=c.conversation_id)
                .filter(
                    Q(group_id__lt=c.group_id)
                    | Q(group__isnull=True)
                    & (Q(reply_to__isnull=True) | Q(reply_to_id__lt=c.group_id))
                )
                .order_by(*(f"-{name}" for name in order))[:limit]
            )
            history[c.group_id] = [
                ContextMessage(m.id, m.type, m.content, m.timestamp) for m in reversed(earlier)
            ]
    return own, history
