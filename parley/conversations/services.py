"""Every state change of a conversation: open, ingest, adopt, close, reply, sweep.

Locking rule: whatever writes a conversation's groups or messages first locks
the conversation row (``UPDATE ... WHERE`` or ``SELECT ... FOR UPDATE``), in
the same transaction. Ids without a row yet are serialised with an advisory
lock (:func:`parley.core.db.conversation_id_lock`). So, for one conversation,
joining a group, closing it and recording its reply never interleave.

Due work is a column, not a timer: a group that owes a reply has
``reply_due_at``. A Celery task with an ETA is the fast path, enqueued after
commit; the periodic sweeper finds whatever the fast path missed (a crashed
worker, a flushed Redis, a failed publish). Redis only notifies.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID, uuid4

import structlog
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from structlog.contextvars import bind_contextvars

from parley.conversations import rules
from parley.conversations.models import BufferedMessage, Conversation, Message, MessageGroup
from parley.conversations.replies import InboundMessage, ReplyRequest, get_reply_writer
from parley.core import metrics, sql
from parley.core.db import conversation_id_lock
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
       message in a group, insert it.
    2. Otherwise the slow path sorts it out: a replay, a closed or unknown
       conversation, or an orphan to buffer.
    3. A unique violation on the id means a concurrent or earlier delivery
       stored it first: answer as a replay or a conflict.
    """
    bind_contextvars(conversation_id=str(conversation_id), message_id=str(message_id))
    try:
        with transaction.atomic():
            now = timezone.now()
            if _lock_open_conversation(conversation_id, message_id, now):
                _append_inbound(message_id, conversation_id, content, timestamp, now)
                return Ingested(message_id, conversation_id, "queued")
            return _ingest_slow_path(message_id, conversation_id, content, timestamp, now)
    except IntegrityError:
        # Only the message id is unique on this path; the transaction rolled
        # back, so nothing of this delivery was kept.
        known = _replay_of(message_id, conversation_id, content, timezone.now())
        if known is None:
            raise
        return known


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
       is closed here and its reply scheduled now.
    3. Otherwise the message starts a new group, and its reply is scheduled
       for the group's due time.
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
    _schedule_reply(group)
    return group


def _group_close(group: MessageGroup, *, now: datetime) -> None:
    """Stop a group collecting and make its reply due now. Caller holds the lock."""
    group.status = MessageGroup.Status.CLOSED
    group.closed_at = now
    group.reply_due_at = now
    group.save(update_fields=["status", "closed_at", "reply_due_at"])
    _schedule_reply(group)


def _schedule_reply(group: MessageGroup) -> None:
    """Fast path: a task at the group's due time, published only if the transaction commits.

    ``robust``: a broker that is down must not fail a request whose data is
    already committed; the sweeper will find the due group instead.
    """
    from parley.conversations.tasks import group_reply_task

    group_id, eta = group.pk, group.reply_due_at
    transaction.on_commit(lambda: group_reply_task.schedule(group_id, eta), robust=True)


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

    Safe to call any number of times, from tasks and the sweeper alike.
    """
    claim = _group_claim(group_id)
    if claim.outcome is not ReplyOutcome.REPLIED:
        return claim
    group = MessageGroup.objects.get(pk=group_id)
    request = ReplyRequest(
        conversation_id=group.conversation_id,
        group_id=group.pk,
        messages=[
            InboundMessage(id=m.id, content=m.content, timestamp=m.timestamp)
            for m in group.messages.order_by("timestamp", "received_at", "id")
        ],
        language=settings.REPLY_LANGUAGE,
    )
    content = get_reply_writer()(request)
    return _group_record_reply(group_id, content, size=len(request.messages))


def _lock_group(group_id: int) -> MessageGroup | None:
    """Lock the group's conversation, then read the group. Caller is in a transaction."""
    conversation_id = (
        MessageGroup.objects.filter(pk=group_id).values_list("conversation_id", flat=True).first()
    )
    if conversation_id is None:
        return None
    Conversation.objects.select_for_update().filter(pk=conversation_id).values_list("pk").get()
    return MessageGroup.objects.get(pk=group_id)


def _group_claim(group_id: int) -> ReplyResult:
    with transaction.atomic():
        now = timezone.now()
        group = _lock_group(group_id)
        if group is None or group.status == MessageGroup.Status.REPLIED:
            return ReplyResult(ReplyOutcome.DONE)
        assert group.reply_due_at is not None
        if group.reply_due_at > now:
            outcome = (
                ReplyOutcome.NOT_DUE
                if group.status == MessageGroup.Status.OPEN
                else ReplyOutcome.LEASED
            )
            return ReplyResult(outcome, due_at=group.reply_due_at)
        if group.status == MessageGroup.Status.OPEN:
            group.status = MessageGroup.Status.CLOSED
            group.closed_at = now
        group.reply_due_at = now + settings.REPLY_LEASE
        group.reply_attempts += 1
        group.save(update_fields=["status", "closed_at", "reply_due_at", "reply_attempts"])
    return ReplyResult(ReplyOutcome.REPLIED)


def _group_record_reply(group_id: int, content: str, *, size: int) -> ReplyResult:
    try:
        with transaction.atomic():
            now = timezone.now()
            group = _lock_group(group_id)
            if group is None or group.status == MessageGroup.Status.REPLIED:
                return ReplyResult(ReplyOutcome.DONE)
            reply = Message.objects.create(
                id=uuid4(),
                conversation_id=group.conversation_id,
                type=Message.Type.OUTBOUND,
                content=content,
                timestamp=now,
                received_at=now,
                reply_to=group,
            )
            group.status = MessageGroup.Status.REPLIED
            group.replied_at = now
            group.reply_due_at = None
            group.save(update_fields=["status", "replied_at", "reply_due_at"])
            Conversation.objects.filter(pk=group.conversation_id).update(updated_at=now)
    except IntegrityError:
        return ReplyResult(ReplyOutcome.DONE)
    delay = (now - group.last_message_at).total_seconds()
    metrics.GROUP_SIZE.observe(size)
    metrics.REPLY_DELAY.observe(delay)
    log.info(
        "group_replied",
        conversation_id=str(group.conversation_id),
        group_id=group_id,
        reply_id=str(reply.id),
        size=size,
        delay_s=round(delay, 3),
    )
    return ReplyResult(ReplyOutcome.REPLIED)


# --- The sweeper -----------------------------------------------------------------


@dataclass(frozen=True)
class SweepReport:
    orphans_expired: int
    groups_replied: int


def due_work_sweep() -> SweepReport:
    """The safety net, run by the scheduler about every second.

    1. Expire buffered messages older than the tolerance (for the audit and the
       metrics; adoption checks the age itself and never depends on this).
    2. Reply to every group whose due time passed more than the grace period
       ago: the fast path missed it (crash, lost ETA task, Redis flushed).
    """
    now = timezone.now()
    expired = BufferedMessage.objects.filter(
        status=BufferedMessage.Status.BUFFERED,
        received_at__lt=now - settings.ORPHAN_TOLERANCE,
    ).update(status=BufferedMessage.Status.EXPIRED, resolved_at=now)
    if expired:
        metrics.ORPHANS.labels(outcome="expired").inc(expired)
    due_ids = list(
        MessageGroup.objects.filter(
            status__in=["OPEN", "CLOSED"], reply_due_at__lte=now - settings.SWEEP_GRACE
        )
        .order_by("reply_due_at")
        .values_list("pk", flat=True)[: settings.SWEEP_BATCH_SIZE]
    )
    replied = 0
    for group_id in due_ids:
        if group_reply(group_id=group_id).outcome is ReplyOutcome.REPLIED:
            replied += 1
    if replied:
        metrics.SWEEPER_CATCHES.inc(replied)
        log.warning("sweeper_caught_groups", count=replied)
    return SweepReport(orphans_expired=expired, groups_replied=replied)
