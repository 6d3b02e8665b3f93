"""Every state change of a conversation: open, ingest, adopt, close, reply, sweep.

Locking rule: whatever writes a conversation's groups or messages first locks
the conversation row (``UPDATE ... WHERE`` or ``SELECT ... FOR UPDATE``), in
the same transaction. Ids without a row yet are serialised with an advisory
lock (:func:`parley.core.db.conversation_id_lock`). So, for one conversation,
joining a group, closing it and recording its reply never interleave.

Due work is a column, not a timer: a group that owes a reply has
``reply_due_at`` (indexed). The sweeper, which the scheduler runs every
``SWEEP_INTERVAL`` (250 ms), answers every group that is due. Nothing about
a reply lives only in Redis: a crashed worker, a flushed or restarted Redis,
or a lost task delays a reply by at most a sweep (or a lease), never loses it.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, NamedTuple
from uuid import UUID, uuid4

import structlog
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from structlog.contextvars import bind_contextvars

from parley.conversations import rules
from parley.conversations.models import BufferedMessage, Conversation, Message, MessageGroup
from parley.conversations.replies import InboundMessage, ReplyRequest, get_reply_writer
from parley.core import metrics, sql
from parley.core.db import SWEEPER_LOCK_KEY, conversation_id_lock, singleton_lock
from parley.core.errors import (
    BufferExpired,
    ConversationAlreadyClosed,
    ConversationClosed,
    ConversationExists,
    ConversationNotFound,
    MessageIdConflict,
)

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
        if not _database_functions():
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


def _database_functions() -> bool:
    """Whether the hot paths run as PostgreSQL functions (migrations 0002 and 0003)."""
    return connection.vendor == "postgresql" and bool(settings.DATABASE_FUNCTIONS)


def _ingest_in_python(
    message_id: UUID, conversation_id: UUID, content: str, timestamp: datetime
) -> Ingested:
    with transaction.atomic():
        now = timezone.now()
        if _lock_open_conversation(conversation_id, message_id, now):
            _append_inbound(message_id, conversation_id, content, timestamp, now)
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
"""  # noqa: S608  (table names from the models)
_SELECT_OPEN_GROUP = f"""
    SELECT * FROM {MessageGroup._meta.db_table} WHERE conversation_id = %s AND status = 'OPEN'
"""  # noqa: S608
_EXTEND_GROUP = f"""
    UPDATE {MessageGroup._meta.db_table} SET last_message_at = %s, reply_due_at = %s WHERE id = %s
"""  # noqa: S608


def _conversation_field(name: str) -> Any:
    return sql.field(Conversation, name)


def _group_field(name: str) -> Any:
    return sql.field(MessageGroup, name)


def _lock_open_conversation(conversation_id: UUID, message_id: UUID, now: datetime) -> bool:
    """Lock the conversation if it is OPEN and the id was never buffered; one round trip.

    The UPDATE takes the row lock that serialises this conversation's writers
    and moves ``updated_at`` (R-1). The NOT EXISTS keeps an id that expired in
    the buffer from slipping in once its conversation exists (B-3).
    """
    changed = sql.execute(
        _LOCK_OPEN_CONVERSATION,
        [
            (_conversation_field("updated_at"), now),
            (_conversation_field("id"), conversation_id),
            (sql.field(BufferedMessage, "id"), message_id),
        ],
    )
    return changed == 1


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
    if not _lock_open_conversation(conversation_id, message_id, now):
        raise ConversationClosed(f"Conversation {conversation_id} is closed.")
    _append_inbound(message_id, conversation_id, content, timestamp, now)
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
    content: str,
    timestamp: datetime,
    now: datetime,
    *,
    arrival: datetime | None = None,
) -> None:
    """Insert an INBOUND message into its group. Caller holds the conversation lock."""
    arrival = arrival or now
    group = _group_for_arrival(conversation_id, arrival=arrival, now=now)
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
        },
    )


def _group_for_arrival(conversation_id: UUID, *, arrival: datetime, now: datetime) -> MessageGroup:
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
        _SELECT_OPEN_GROUP, sql.adapt([(_group_field("conversation"), conversation_id)])
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
                    (_group_field("last_message_at"), group.last_message_at),
                    (_group_field("reply_due_at"), group.reply_due_at),
                    (_group_field("id"), group.pk),
                ],
            )
            return group
        _group_close(group, now=now)
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


def _group_close(group: MessageGroup, *, now: datetime) -> None:
    """Stop a group collecting and make its reply due now. Caller holds the lock."""
    group.status = MessageGroup.Status.CLOSED
    group.closed_at = now
    group.reply_due_at = now
    group.save(update_fields=["status", "closed_at", "reply_due_at"])


def _schedule_reply(group_id: int) -> None:
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


def conversation_open(*, conversation_id: UUID) -> Conversation:
    """NEW_CONVERSATION (W-4): create it and adopt the messages buffered for it (B-2).

    Buffered messages that arrived at most the tolerance ago join at once, in
    arrival order, grouped by their own arrival times; older ones expire (B-3).
    """
    bind_contextvars(conversation_id=str(conversation_id))
    try:
        with transaction.atomic():
            now = timezone.now()
            conversation_id_lock(conversation_id)
            if Conversation.objects.filter(pk=conversation_id).exists():
                raise ConversationExists(f"Conversation {conversation_id} already exists.")
            conversation = Conversation.objects.create(
                id=conversation_id, status="OPEN", created_at=now, updated_at=now
            )
            _adopt_orphans(conversation_id, now)
    except IntegrityError as exc:  # the id's lock makes this unreachable; kept as the last word
        raise ConversationExists(f"Conversation {conversation_id} already exists.") from exc
    return conversation


def _adopt_orphans(conversation_id: UUID, now: datetime) -> None:
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


def conversation_close(*, conversation_id: UUID) -> Conversation:
    """CLOSE_CONVERSATION (W-6). A group still open is answered at once (G-5)."""
    bind_contextvars(conversation_id=str(conversation_id))
    with transaction.atomic():
        now = timezone.now()
        closed = Conversation.objects.filter(pk=conversation_id, status="OPEN").update(
            status="CLOSED", closed_at=now, updated_at=now
        )
        if not closed:
            if Conversation.objects.filter(pk=conversation_id).exists():
                raise ConversationAlreadyClosed(
                    f"Conversation {conversation_id} is already closed."
                )
            raise ConversationNotFound(f"Conversation {conversation_id} does not exist.")
        group = MessageGroup.objects.filter(conversation_id=conversation_id, status="OPEN").first()
        if group is not None:
            _group_close(group, now=now)
            # G-5: answered at once, not at the next sweep.
            _schedule_reply(group.pk)
        conversation = Conversation.objects.get(pk=conversation_id)
    return conversation


# --- Replies ---------------------------------------------------------------------


class ReplyOutcome(enum.Enum):
    REPLIED = "replied"  # this call stored the reply
    NOT_DUE = "not_due"  # the group is still collecting; try again at its due time
    LEASED = "leased"  # another runner is writing it
    DONE = "done"  # already replied (a second run, or a runner that lost its lease)


@dataclass(frozen=True)
class ReplyResult:
    outcome: ReplyOutcome
    due_at: datetime | None = None


def group_reply(*, group_id: int) -> ReplyResult:
    """Write the reply of a group that is due, exactly once (G-2, G-3).

    1. Claim, under the conversation lock: an OPEN group that is due becomes
       CLOSED (no message can join it any more), and the claimer takes a
       lease by moving ``reply_due_at`` to the end of it.
    2. Write the text, outside any transaction: the writer may be slow.
    3. Record, under the lock: insert the OUTBOUND message and mark the group
       REPLIED. The one-to-one ``reply_to`` makes a second reply impossible,
       even for a runner whose lease ran out.

    Safe to call any number of times, from the CLOSE_CONVERSATION task and the
    portable sweep alike. It takes only the group id: each step finds the
    conversation to lock in the same statement that locks it. A reply costs
    8 round trips (claim 3, read 1, record 4), a group that is not due yet 2.
    """
    claim = _group_claim(group_id)
    if claim.outcome is not ReplyOutcome.REPLIED:
        return claim
    # A claimed group is CLOSED: its messages and last arrival no longer change.
    rows = _select(_GROUP_MESSAGES, [(_group_field("id"), group_id)], _group_messages_columns())
    if not rows:  # deleted meanwhile (with its conversation)
        return ReplyResult(ReplyOutcome.DONE)
    conversation_id, last_message_at = rows[0][0], rows[0][1]
    request = ReplyRequest(
        conversation_id=conversation_id,
        group_id=group_id,
        messages=[
            InboundMessage(id=row[2], content=row[3], timestamp=row[4])
            for row in rows
            if row[2] is not None
        ],
        language=settings.REPLY_LANGUAGE,
    )
    content = get_reply_writer()(request)
    return _group_record_reply(
        group_id,
        content,
        size=len(request.messages),
        conversation_id=conversation_id,
        last_message_at=last_message_at,
    )


# The reply path's statements, as raw SQL like the hot path's (parley.core.sql).
# Each lock finds the group's conversation and locks that row in one statement;
# the group row is only ever written after it, as on the message path.
_GROUP_TABLE = MessageGroup._meta.db_table
_CONVERSATION_TABLE = Conversation._meta.db_table
_MESSAGE_TABLE = Message._meta.db_table
_LOCK_GROUP = f"""
    SELECT g.status, g.reply_due_at
    FROM {_GROUP_TABLE} g JOIN {_CONVERSATION_TABLE} c ON c.id = g.conversation_id
    WHERE g.id = %s
"""  # noqa: S608  (table names from the models)
_READ_GROUP = f"""
    SELECT status, reply_due_at, conversation_id, last_message_at FROM {_GROUP_TABLE} WHERE id = %s
"""  # noqa: S608
_CLAIM_GROUP = f"""
    UPDATE {_GROUP_TABLE}
    SET status = 'CLOSED',
        closed_at = CASE WHEN status = 'OPEN' THEN %s ELSE closed_at END,
        reply_due_at = %s,
        reply_attempts = reply_attempts + 1
    WHERE id = %s AND status IN ('OPEN', 'CLOSED') AND reply_due_at <= %s
"""  # noqa: S608
_GROUP_MESSAGES = f"""
    SELECT g.conversation_id, g.last_message_at, m.id, m.content, m.timestamp
    FROM {_GROUP_TABLE} g LEFT JOIN {_MESSAGE_TABLE} m ON m.group_id = g.id
    WHERE g.id = %s
    ORDER BY m.timestamp, m.received_at, m.id
"""  # noqa: S608
_LOCK_CONVERSATION_OF_GROUP = f"""
    UPDATE {_CONVERSATION_TABLE} SET updated_at = %s
    WHERE id = (SELECT conversation_id FROM {_GROUP_TABLE} WHERE id = %s)
"""  # noqa: S608
_MARK_REPLIED = f"""
    UPDATE {_GROUP_TABLE} SET status = 'REPLIED', replied_at = %s, reply_due_at = NULL
    WHERE id = %s AND status <> 'REPLIED'
"""  # noqa: S608


def _message_field(name: str) -> Any:
    return sql.field(Message, name)


def _read_group_columns() -> list[Any]:
    return [
        _group_field("status"),
        _group_field("reply_due_at"),
        _group_field("conversation"),
        _group_field("last_message_at"),
    ]


def _group_messages_columns() -> list[Any]:
    return [
        _group_field("conversation"),
        _group_field("last_message_at"),
        _message_field("id"),
        _message_field("content"),
        _message_field("timestamp"),
    ]


def _select(query: str, params: Sequence[sql.Param], columns: Sequence[Any]) -> list[list[Any]]:
    """The rows of a raw SELECT, each column converted by its field as the ORM would.

    PostgreSQL already returns UUIDs and aware datetimes, so nothing is
    converted there; SQLite returns text, which the backend's converters
    parse (the same converters ``values_list`` applies).
    """
    with connection.cursor() as cursor:
        cursor.execute(query, sql.adapt(params))
        rows = [list(row) for row in cursor.fetchall()]
    converters = []
    for index, column in enumerate(columns):
        col = column.get_col(column.model._meta.db_table)
        funcs = [*connection.ops.get_db_converters(col), *col.get_db_converters(connection)]
        if funcs:
            converters.append((index, col, funcs))
    for row in rows:
        for index, col, funcs in converters:
            for func in funcs:
                row[index] = func(row[index], col, connection)
    return rows


def _lock_group(group_id: int) -> tuple[str, datetime | None] | None:
    """Lock the group's conversation and read the group's status and due time, in one statement.

    Caller is in a transaction. Only the conversation row is locked
    (``FOR UPDATE OF c``; SQLite's IMMEDIATE transaction already serialises
    every writer). None if the group does not exist.

    On PostgreSQL a statement that waited for the lock returns the group row
    as it was before the lock's holder changed it, so the result is a hint:
    the claim itself is a conditional UPDATE, evaluated under the lock.
    """
    query = _LOCK_GROUP + (
        " FOR UPDATE OF c" if connection.features.has_select_for_update_of else ""
    )
    rows = _select(query, [(_group_field("id"), group_id)], _read_group_columns()[:2])
    if not rows:
        return None
    status, due_at = rows[0]
    return status, due_at


def _group_claim(group_id: int) -> ReplyResult:
    with transaction.atomic():
        now = timezone.now()
        found = _lock_group(group_id)
        if found is None:
            return ReplyResult(ReplyOutcome.DONE)
        status, due_at = found
        if status != MessageGroup.Status.REPLIED:
            assert due_at is not None
            if due_at <= now:
                claimed = sql.execute(
                    _CLAIM_GROUP,
                    [
                        (_group_field("closed_at"), now),
                        (_group_field("reply_due_at"), now + settings.REPLY_LEASE),
                        (_group_field("id"), group_id),
                        (_group_field("reply_due_at"), now),
                    ],
                )
                if claimed:
                    return ReplyResult(ReplyOutcome.REPLIED)
                # The group changed while this runner waited for the lock
                # (another runner claimed or answered it, or a message moved
                # its due time on): read it again, under the lock.
                status, due_at, _, _ = _select(
                    _READ_GROUP, [(_group_field("id"), group_id)], _read_group_columns()
                )[0]
        if status == MessageGroup.Status.REPLIED:
            return ReplyResult(ReplyOutcome.DONE)
        # Not due: a stale hint here only makes the caller try again, early.
        outcome = (
            ReplyOutcome.NOT_DUE if status == MessageGroup.Status.OPEN else ReplyOutcome.LEASED
        )
        return ReplyResult(outcome, due_at=due_at)


def _group_record_reply(
    group_id: int,
    content: str,
    *,
    size: int,
    conversation_id: UUID | None = None,
    last_message_at: datetime | None = None,
) -> ReplyResult:
    """Store the reply and mark the group REPLIED, under the conversation lock.

    ``conversation_id`` and ``last_message_at`` are the group's (they never
    change once it is claimed); they are read here when not given.
    """
    reply_id = uuid4()
    try:
        with transaction.atomic():
            now = timezone.now()
            # The lock; the same UPDATE moves the conversation's updated_at.
            locked = sql.execute(
                _LOCK_CONVERSATION_OF_GROUP,
                [(_conversation_field("updated_at"), now), (_group_field("id"), group_id)],
            )
            if not locked:  # no such group
                return ReplyResult(ReplyOutcome.DONE)
            marked = sql.execute(
                _MARK_REPLIED,
                [(_group_field("replied_at"), now), (_group_field("id"), group_id)],
            )
            if not marked:  # already replied: undo the move of updated_at
                transaction.set_rollback(True)
                return ReplyResult(ReplyOutcome.DONE)
            if conversation_id is None or last_message_at is None:
                _, _, conversation_id, last_message_at = _select(
                    _READ_GROUP, [(_group_field("id"), group_id)], _read_group_columns()
                )[0]
            # A second reply to the group would be a unique violation (G-3).
            sql.insert(
                Message,
                {
                    "id": reply_id,
                    "conversation": conversation_id,
                    "type": Message.Type.OUTBOUND,
                    "content": content,
                    "timestamp": now,
                    "received_at": now,
                    "reply_to": group_id,
                },
            )
    except IntegrityError:
        return ReplyResult(ReplyOutcome.DONE)
    assert conversation_id is not None
    assert last_message_at is not None
    _replied(conversation_id, group_id, reply_id, size=size, delay=now - last_message_at)
    return ReplyResult(ReplyOutcome.REPLIED)


def _replied(
    conversation_id: UUID, group_id: int, reply_id: UUID, *, size: int, delay: timedelta
) -> None:
    metrics.GROUP_SIZE.observe(size)
    metrics.REPLY_DELAY.observe(delay.total_seconds())
    log.info(
        "group_replied",
        conversation_id=str(conversation_id),
        group_id=group_id,
        reply_id=str(reply_id),
        size=size,
        delay_s=round(delay.total_seconds(), 3),
    )


# --- The sweeper -----------------------------------------------------------------


@dataclass(frozen=True)
class SweepReport:
    orphans_expired: int
    groups_replied: int
    ran: bool = True  # False: another sweep was running, this one did nothing


def due_work_sweep(*, budget: float = 5.0) -> SweepReport:
    """Answer every group that is due; run by the scheduler every ``SWEEP_INTERVAL``.

    1. Only one sweep runs at a time (a session advisory lock on PostgreSQL):
       the scheduler's ticks that find one running return at once, instead of
       racing it for the same groups.
    2. Expire buffered messages older than the tolerance (for the audit and the
       metrics; adoption checks the age itself and never depends on this).
    3. Reply to the due groups, oldest due first, ``SWEEP_BATCH_SIZE`` at a
       time, until none is left or ``budget`` seconds have passed (the next
       tick goes on). On PostgreSQL a batch is claimed in one call and
       recorded in one call (:func:`_reply_batch`); elsewhere each group goes
       through :func:`group_reply`. A group whose runner died is due again
       when its lease ends, so it is retried here too (G-4).
    """
    with singleton_lock(SWEEPER_LOCK_KEY) as acquired:
        if not acquired:
            return SweepReport(orphans_expired=0, groups_replied=0, ran=False)
        now = timezone.now()
        expired = BufferedMessage.objects.filter(
            status=BufferedMessage.Status.BUFFERED,
            received_at__lt=now - settings.ORPHAN_TOLERANCE,
        ).update(status=BufferedMessage.Status.EXPIRED, resolved_at=now)
        if expired:
            metrics.ORPHANS.labels(outcome="expired").inc(expired)
        started = time.monotonic()
        replied = 0
        while True:
            batch = _reply_batch if _database_functions() else _reply_one_by_one
            taken, answered = batch(settings.SWEEP_BATCH_SIZE)
            replied += answered
            if taken < settings.SWEEP_BATCH_SIZE or time.monotonic() - started > budget:
                break
        metrics.SWEEP_DURATION.observe(time.monotonic() - started)
    return SweepReport(orphans_expired=expired, groups_replied=replied)


def _reply_one_by_one(limit: int) -> tuple[int, int]:
    """Answer up to ``limit`` due groups with :func:`group_reply`; (taken, replied)."""
    due_ids = list(
        MessageGroup.objects.filter(status__in=["OPEN", "CLOSED"], reply_due_at__lte=timezone.now())
        .order_by("reply_due_at")
        .values_list("pk", flat=True)[:limit]
    )
    replied = 0
    for group_id in due_ids:
        try:
            replied += group_reply(group_id=group_id).outcome is ReplyOutcome.REPLIED
        except Exception:
            # Its lease keeps it out of the next batches until it ends (then
            # it is retried); the other groups go on.
            _reply_failed(group_id)
    return len(due_ids), replied


class _Written(NamedTuple):
    group_id: int
    conversation_id: UUID
    reply_id: UUID
    content: str
    last_message_at: datetime
    size: int


_CLAIM_DUE_GROUPS = "SELECT * FROM parley_claim_due_groups(%s, %s, %s)"
_BATCH_MESSAGES = f"""
    SELECT group_id, id, content, timestamp FROM {_MESSAGE_TABLE}
    WHERE group_id = ANY(%s)
    ORDER BY group_id, timestamp, received_at, id
"""  # noqa: S608  (table name from the model)
_RECORD_REPLIES = "SELECT * FROM parley_record_replies(%s, %s, %s, %s)"


def _reply_batch(limit: int) -> tuple[int, int]:
    """Claim up to ``limit`` due groups, write their replies, record them; (claimed, replied).

    Three round trips for the whole batch (claim, read, record) instead of
    about ten per group. Same steps and guarantees as :func:`group_reply`:
    the claim closes and leases the groups under their conversations' locks,
    the writer runs outside any transaction, and the record skips a group
    already answered. PostgreSQL only.
    """
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_DUE_GROUPS, [now, now + settings.REPLY_LEASE, limit])
        claimed = cursor.fetchall()
        if not claimed:
            return 0, 0
        cursor.execute(_BATCH_MESSAGES, [[group_id for group_id, _, _ in claimed]])
        messages: dict[int, list[InboundMessage]] = {}
        for group_id, message_id, content, timestamp in cursor.fetchall():
            messages.setdefault(group_id, []).append(InboundMessage(message_id, content, timestamp))
    writer = get_reply_writer()
    written: list[_Written] = []
    for group_id, conversation_id, last_message_at in claimed:
        request = ReplyRequest(
            conversation_id=conversation_id,
            group_id=group_id,
            messages=messages.get(group_id, []),
            language=settings.REPLY_LANGUAGE,
        )
        try:
            content = writer(request)
        except Exception:
            _reply_failed(group_id)
            continue
        written.append(
            _Written(
                group_id, conversation_id, uuid4(), content, last_message_at, len(request.messages)
            )
        )
    if not written:
        return len(claimed), 0
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            _RECORD_REPLIES,
            [
                now,
                [w.group_id for w in written],
                [w.reply_id for w in written],
                [w.content for w in written],
            ],
        )
        recorded = {row[0] for row in cursor.fetchall()}
    for w in written:
        if w.group_id in recorded:
            _replied(
                w.conversation_id,
                w.group_id,
                w.reply_id,
                size=w.size,
                delay=now - w.last_message_at,
            )
    return len(claimed), len(recorded)


def _reply_failed(group_id: int) -> None:
    """The writer (or the database) failed for one group: log it and go on.

    The group keeps its lease, so no sweep takes it again until the lease
    ends; then it is retried.
    """
    log.exception("group_reply_failed", group_id=group_id)
    metrics.TASK_FAILURES.labels(task="sweep.group_reply").inc()
