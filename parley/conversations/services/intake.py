"""Intake: NEW_MESSAGE (stored, buffered or refused) and NEW_CONVERSATION (adopting orphans)."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import structlog
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from structlog.contextvars import bind_contextvars

from parley.conversations import events, rules
from parley.conversations.models import BufferedMessage, Conversation, Message, MessageGroup
from parley.conversations.services._common import (
    conversation_field,
    database_functions,
    select_rows,
)
from parley.conversations.services.groups import group_for_arrival
from parley.core import metrics, sql
from parley.core.db import conversation_id_lock
from parley.core.errors import (
    BufferExpired,
    ConversationClosed,
    ConversationExists,
    MessageIdConflict,
)
from parley.tenants.services import tenant_ensure

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Ingested:
    """What a NEW_MESSAGE came to (W-5)."""

    id: UUID
    conversation_id: UUID
    status: Literal["queued", "buffered"]
    replay: bool = False


# --- Intake ----------------------------------------------------------------------


def message_ingest(
    *, message_id: UUID, conversation_id: UUID, content: str, timestamp: datetime
) -> Ingested:
    """Store a NEW_MESSAGE in its conversation, or buffer it until the conversation arrives.

    1. Fast path, one transaction: lock the OPEN conversation (the same UPDATE
       moves ``updated_at`` and checks the id was never buffered), place the
       message in a group (G-1), insert it. On PostgreSQL these steps are one
       function call, one round trip (migration 0002); elsewhere they run from
       Python, as :func:`_ingest_in_python`.
    2. Otherwise the slow path sorts it out: a replay, a closed or unknown
       conversation, or an orphan to buffer.
    3. A unique violation on the id means a concurrent or earlier delivery
       stored it first: answer as a replay or a conflict.
    """
    bind_contextvars(conversation_id=str(conversation_id), message_id=str(message_id))
    try:
        if not database_functions():
            return _ingest_in_python(message_id, conversation_id, content, timestamp)
        ingested = _ingest_in_postgresql(message_id, conversation_id, content, timestamp)
        if ingested is None:  # the function found no OPEN conversation for it
            with transaction.atomic():
                now = timezone.now()
                ingested = _ingest_slow_path(message_id, conversation_id, content, timestamp, now)
    except IntegrityError:
        # Only the message id is unique on this path; the transaction rolled
        # back, so nothing of this delivery was kept.
        known = _replay_of(message_id, conversation_id, content, timezone.now())
        if known is None:
            raise
        return known
    return ingested


def _ingest_in_python(
    message_id: UUID, conversation_id: UUID, content: str, timestamp: datetime
) -> Ingested:
    with transaction.atomic():
        now = timezone.now()
        tenant_id = _lock_open_conversation(conversation_id, message_id, now)
        if tenant_id is not None:
            _append_inbound(message_id, conversation_id, tenant_id, content, timestamp, now)
            return Ingested(message_id, conversation_id, "queued")
        return _ingest_slow_path(message_id, conversation_id, content, timestamp, now)


_INGEST_FUNCTION = "SELECT * FROM parley_message_ingest(%s, %s, %s, %s, %s, %s, %s)"


def _ingest_in_postgresql(
    message_id: UUID, conversation_id: UUID, content: str, timestamp: datetime
) -> Ingested | None:
    """The fast path in one statement; None when the slow path must decide.

    Outside a transaction the statement is its own transaction, so it costs a
    single round trip. Inside one (a caller's ``atomic``), a savepoint keeps a
    unique violation from spoiling the caller's transaction.
    """
    now = timezone.now()
    params: list[Any] = [
        message_id,
        conversation_id,
        content,
        timestamp,
        now,
        settings.GROUP_WINDOW,
        settings.GROUP_MAX_WAIT,
    ]
    savepoint = transaction.atomic() if connection.in_atomic_block else nullcontext()
    with savepoint, connection.cursor() as cursor:
        cursor.execute(_INGEST_FUNCTION, params)
        stored, _group_id = cursor.fetchone()
    if not stored:
        return None
    return Ingested(message_id, conversation_id, "queued")


# The hot path's statements, as raw SQL (parley.core.sql explains why).
_LOCK_OPEN_CONVERSATION = f"""
    UPDATE {Conversation._meta.db_table} SET updated_at = %s
    WHERE id = %s AND status = 'OPEN'
      AND NOT EXISTS (SELECT 1 FROM {BufferedMessage._meta.db_table} WHERE id = %s)
    RETURNING tenant_id
"""  # noqa: S608  (table names from the models)
_SELECT_OPEN_GROUP = f"""
    SELECT * FROM {MessageGroup._meta.db_table} WHERE conversation_id = %s AND status = 'OPEN'
"""  # noqa: S608
_EXTEND_GROUP = f"""
    UPDATE {MessageGroup._meta.db_table} SET last_message_at = %s, reply_due_at = %s WHERE id = %s
"""  # noqa: S608


def _lock_open_conversation(conversation_id: UUID, message_id: UUID, now: datetime) -> UUID | None:
    """Lock the conversation if it is OPEN and the id was never buffered; one round trip.

    Returns its tenant's id, or None when it did not lock (not OPEN, or a
    buffered id).

    The UPDATE takes the row lock that serialises this conversation's writers
    and moves ``updated_at`` (R-1). The NOT EXISTS keeps an id that expired in
    the buffer from slipping in once its conversation exists (B-3).
    """
    rows = select_rows(
        _LOCK_OPEN_CONVERSATION,
        [
            (conversation_field("updated_at"), now),
            (conversation_field("id"), conversation_id),
            (sql.field(BufferedMessage, "id"), message_id),
        ],
        [conversation_field("tenant")],
    )
    return rows[0][0] if rows else None


def _ingest_slow_path(
    message_id: UUID, conversation_id: UUID, content: str, timestamp: datetime, now: datetime
) -> Ingested:
    replay = _replay_of(message_id, conversation_id, content, now)
    if replay is not None:
        return replay
    conversation = Conversation.objects.filter(pk=conversation_id).first()
    if conversation is None:
        # B-4: hold the id's lock, then look again: a NEW_CONVERSATION that
        # committed meanwhile is seen (READ COMMITTED takes a new snapshot per
        # statement), and one that has not started yet will see our row.
        conversation_id_lock(conversation_id)
        conversation = Conversation.objects.filter(pk=conversation_id).first()
    if conversation is None:
        BufferedMessage.objects.create(
            id=message_id,
            conversation_id=conversation_id,
            content=content,
            timestamp=timestamp,
            received_at=now,
        )
        metrics.ORPHANS.labels(outcome="buffered").inc()
        log.info("message_buffered")
        return Ingested(message_id, conversation_id, "buffered")
    if conversation.status == Conversation.Status.CLOSED:
        raise ConversationClosed(f"Conversation {conversation_id} is closed.")
    # The conversation was created while we waited for its lock.
    tenant_id = _lock_open_conversation(conversation_id, message_id, now)
    if tenant_id is None:
        raise ConversationClosed(f"Conversation {conversation_id} is closed.")
    _append_inbound(message_id, conversation_id, tenant_id, content, timestamp, now)
    return Ingested(message_id, conversation_id, "queued")


def _replay_of(
    message_id: UUID, conversation_id: UUID, content: str, now: datetime
) -> Ingested | None:
    """None if the id is new; an Ingested for an identical replay; else the error (W-5, B-3)."""
    stored = Message.objects.filter(pk=message_id).values("conversation_id", "content").first()
    if stored is not None:
        if stored["conversation_id"] != conversation_id or stored["content"] != content:
            raise MessageIdConflict(f"Message {message_id} was already received with other data.")
        return Ingested(message_id, conversation_id, "queued", replay=True)
    buffered = BufferedMessage.objects.filter(pk=message_id).first()
    if buffered is None:
        return None
    if buffered.conversation_id != conversation_id or buffered.content != content:
        raise MessageIdConflict(f"Message {message_id} was already received with other data.")
    expired = buffered.status == BufferedMessage.Status.EXPIRED or (
        buffered.status == BufferedMessage.Status.BUFFERED
        and not rules.orphan_is_adoptable(
            received_at=buffered.received_at, now=now, tolerance=settings.ORPHAN_TOLERANCE
        )
    )
    if expired:
        tolerance_s = settings.ORPHAN_TOLERANCE.total_seconds()
        raise BufferExpired(
            f"Message {message_id} waited more than {tolerance_s:g} s for its conversation "
            "and expired."
        )
    status: Literal["queued", "buffered"] = (
        "queued" if buffered.status == BufferedMessage.Status.ADOPTED else "buffered"
    )
    return Ingested(message_id, conversation_id, status, replay=True)


def _append_inbound(
    message_id: UUID,
    conversation_id: UUID,
    tenant_id: UUID,
    content: str,
    timestamp: datetime,
    now: datetime,
    *,
    arrival: datetime | None = None,
    external_id: str | None = None,
) -> None:
    """Insert an INBOUND message into its group, and its outbox event. Caller holds the lock.

    ``external_id`` is the producer's own id when it was not a UUID (Q-2).
    """
    arrival = arrival or now
    group = group_for_arrival(conversation_id, arrival=arrival, now=now)
    events.message_received(
        message_id=message_id,
        conversation_id=conversation_id,
        tenant_id=tenant_id,
        group_id=group.pk,
        reply_due_at=group.reply_due_at,
        timestamp=timestamp,
        received_at=arrival,
    )
    sql.insert(
        Message,
        {
            "id": message_id,
            "conversation": conversation_id,
            "type": Message.Type.INBOUND,
            "content": content,
            "timestamp": timestamp,
            "received_at": arrival,
            "group": group.pk,
            "external_id": external_id,
        },
    )


def conversation_open(*, conversation_id: UUID, tenant_id: UUID | None = None) -> Conversation:
    """NEW_CONVERSATION (W-4): create it and adopt the messages buffered for it (B-2).

    Buffered messages that arrived at most the tolerance ago join at once, in
    arrival order, grouped by their own arrival times; older ones expire (B-3).
    The conversation belongs to ``tenant_id`` (created with the defaults when
    unknown) or to the default tenant (Q-1).
    """
    bind_contextvars(conversation_id=str(conversation_id))
    try:
        with transaction.atomic():
            now = timezone.now()
            tenant_id = tenant_ensure(tenant_id=tenant_id)
            conversation_id_lock(conversation_id)
            if Conversation.objects.filter(pk=conversation_id).exists():
                raise ConversationExists(f"Conversation {conversation_id} already exists.")
            conversation = Conversation.objects.create(
                id=conversation_id,
                tenant_id=tenant_id,
                status="OPEN",
                created_at=now,
                updated_at=now,
            )
            events.conversation_opened(
                conversation_id=conversation_id, tenant_id=tenant_id, occurred_at=now
            )
            _adopt_orphans(conversation_id, tenant_id, now)
    except IntegrityError as exc:  # the id's lock makes this unreachable; kept as the last word
        raise ConversationExists(f"Conversation {conversation_id} already exists.") from exc
    return conversation


def _adopt_orphans(conversation_id: UUID, tenant_id: UUID, now: datetime) -> None:
    orphans = list(
        BufferedMessage.objects.select_for_update()
        .filter(conversation_id=conversation_id, status=BufferedMessage.Status.BUFFERED)
        .order_by("received_at", "id")
    )
    for orphan in orphans:
        if rules.orphan_is_adoptable(
            received_at=orphan.received_at, now=now, tolerance=settings.ORPHAN_TOLERANCE
        ):
            _append_inbound(
                orphan.id,
                conversation_id,
                tenant_id,
                orphan.content,
                orphan.timestamp,
                now,
                arrival=orphan.received_at,
            )
            orphan.status = BufferedMessage.Status.ADOPTED
            metrics.ORPHANS.labels(outcome="adopted").inc()
            log.info("orphan_adopted", message_id=str(orphan.id))
        else:
            orphan.status = BufferedMessage.Status.EXPIRED
            metrics.ORPHANS.labels(outcome="expired").inc()
        orphan.resolved_at = now
        orphan.save(update_fields=["status", "resolved_at"])
