"""Writes of the streaming core: open, continue, claim, release, delete, expire, prune.

Every function is one short transaction (or a few); none waits. The long
poll (``longpoll``) calls them between its waits, from a thread, holding no
connection in between (SPEC L-1).

**Locks.** A claim locks the pending items it takes (``FOR UPDATE SKIP
LOCKED``: two claims never wait for each other's items), then the stream's
row, which it updates only if it is still open. DELETE, expiry and the
withdrawal of an answer lock the stream's row and touch only items already
delivered, never pending ones, so no two of these wait for each other in a
cycle. ``stream_start`` takes a lock on its key first.

**No write while idle.** A request that finds nothing writes nothing until
its 204: no row lock, no acknowledgement to record, and the idle expiry is
moved only if the request could outlive it. Its transactions then commit
without a WAL flush, which matters: 200 idle long polls must not add to the
commits the webhooks wait for (``make bench``, part ``streams``). The 204's
own update of the idle expiry commits without waiting for the disk either
(``synchronous_commit`` off for it alone): a database crash that loses it
lets the stream expire up to one poll early.
"""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from parley.live import services as live
from parley.streams import events, kinds
from parley.streams.errors import StreamClosed, StreamNotFound, TooManyStreams
from parley.streams.kinds import StreamKind
from parley.streams.models import Interaction, ReplyItem, Stream

log = structlog.get_logger(__name__)

# Interaction ids: 12 lowercase alphanumerics, from the OS's randomness.
ID_ALPHABET = string.ascii_lowercase + string.digits
ID_LENGTH = 12
ID_PATTERN = re.compile(r"[a-z0-9]{12}")
# How much longer than its kind's poll time a request may take (its claim, its
# answer) before its stream may expire under it: a request announces
# "poll + grace" when it arrives (X-8: never expire a stream mid-request).
REQUEST_GRACE = timedelta(seconds=2)
# First key of the per-key advisory lock of stream_start (see parley.core.db).
_STREAM_KEY_LOCK_CLASS = 0x50_61_74  # "Pat"
# Interaction id collisions (36^12 values) are retried this many times.
_ID_ATTEMPTS = 5

_STREAM = Stream._meta.db_table
_INTERACTION = Interaction._meta.db_table


@dataclass(frozen=True)
class Batch:
    """Items claimed for one answer, in claim order, and the id issued with them."""

    interaction_id: str
    item_ids: list[int]


@dataclass(frozen=True)
class Begun:
    """What the first transaction of a request did: the stream, and maybe a first batch."""

    stream_id: int
    batch: Batch | None


class _IdTaken(Exception):
    """The random interaction id exists already: the transaction is run again."""


def new_interaction_id() -> str:
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))


def _retrying_id_collisions(run: Any) -> Any:
    for _ in range(_ID_ATTEMPTS):
        try:
            return run()
        except _IdTaken:
            log.warning("stream_interaction_id_collision")
    raise RuntimeError("could not issue a unique interaction id")


def _greatest() -> str:
    return "GREATEST" if connection.vendor == "postgresql" else "MAX"


def _execute(query: str, params: list[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return list(cursor.fetchall()) if cursor.description else []


def _db_time(moment: datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(moment)


# --- Opening and continuing -------------------------------------------------------


def stream_start(*, kind: StreamKind, key: str, limit: int, now: datetime | None = None) -> Begun:
    """Open a stream of ``key`` and try a first claim (X-7), in one transaction.

    1. Lock the key (PostgreSQL advisory lock; SQLite serialises every writer),
       so concurrent starts of the same key take turns: exactly N of them
       find a free slot (X-7).
    2. Close the key's streams that expired (X-8), so their slots count free.
    3. If every slot is held: 429 with Retry-After, when the first of them
       could expire; nothing opened, nothing consumed.
    4. Insert the stream in the lowest free slot; try a first claim.
    """
    at = now or timezone.now()

    def run() -> Begun:
        retry_after: timedelta | None = None
        begun: Begun | None = None
        with transaction.atomic():
            _lock_key(kind.name, key)
            _expire(kind=kind, key=key, now=at)
            held = list(
                Stream.objects.filter(kind=kind.name, key=key, closed_at__isnull=True).values_list(
                    "slot", "expires_at"
                )
            )
            if len(held) >= kind.max_streams:
                retry_after = min(expires for _, expires in held) - at
            else:
                slot = min(set(range(1, kind.max_streams + 1)) - {slot for slot, _ in held})
                stream = Stream.objects.create(
                    kind=kind.name,
                    key=key,
                    slot=slot,
                    opened_at=at,
                    last_seen_at=at,
                    expires_at=at + _in_flight(kind),
                )
                events.stream_opened(
                    stream_id=stream.id,
                    kind=kind.name,
                    key=key,
                    slot=slot,
                    tenant_id=kind.tenant_id(key),
                    at=at,
                )
                begun = Begun(stream.id, _claim(kind, stream.id, key, limit, at))
        if begun is None:
            assert retry_after is not None
            raise TooManyStreams(
                f"This {kind.key_label} already has {kind.max_streams} open streams. "
                "Delete one, or retry after the time in Retry-After.",
                retry_after_seconds=retry_after.total_seconds(),
            )
        return begun

    result: Begun = _retrying_id_collisions(run)
    return result


def stream_resume(
    *, kind: StreamKind, key: str, interaction_id: str, limit: int, now: datetime | None = None
) -> Begun:
    """A request naming ``interaction_id``: acknowledge, keep the stream alive, try a claim.

    404 for an id never issued, or issued to another kind or key (X-9, which
    reveals nothing about the other key); 410 for a stream that was deleted
    or has expired, which closes it now if nobody had yet.
    """
    at = now or timezone.now()

    def run() -> Begun:
        closed = False
        begun: Begun | None = None
        with transaction.atomic():
            found = _find(kind, key, interaction_id, lock=False)
            if found is None:
                raise StreamNotFound(_not_found_detail(kind, interaction_id))
            stream, seq = found
            if stream.closed_at is not None:
                closed = True
            elif stream.expires_at <= at:
                # Expired: closed now if the sweep has not yet (or a request of
                # it moved the time meanwhile: then it is not closed after all).
                closed = _close(stream.id, Stream.CloseReason.EXPIRED, at)
            if not closed:
                acknowledged = _acknowledge(stream.id, up_to_seq=seq, now=at)
                in_flight = at + _in_flight(kind)
                if acknowledged or stream.expires_at < in_flight:
                    _execute(
                        f"UPDATE {_STREAM} SET"  # noqa: S608  (names from the models)
                        f" expires_at = {_greatest()}(expires_at, %s),"
                        " acknowledged_count = acknowledged_count + %s WHERE id = %s",
                        [_db_time(in_flight), acknowledged, stream.id],
                    )
                begun = Begun(stream.id, _claim(kind, stream.id, key, limit, at))
        if closed:
            raise StreamClosed(_closed_detail(kind))
        assert begun is not None
        return begun

    result: Begun = _retrying_id_collisions(run)
    return result


def stream_claim(
    *, kind: StreamKind, stream_id: int, key: str, limit: int, now: datetime | None = None
) -> Batch | None:
    """Claim up to ``limit`` pending items for a waiting request of an open stream.

    Called when the bell rang for the key: something was committed, or the
    process's re-check found pending items (``watch``).
    """
    at = now or timezone.now()

    def run() -> Batch | None:
        with transaction.atomic():
            return _claim(kind, stream_id, key, limit, at)

    result: Batch | None = _retrying_id_collisions(run)
    return result


def stream_finish(*, kind: StreamKind, stream_id: int, now: datetime | None = None) -> str:
    """End a request that found nothing: the id for its 204's ``Pull-Next`` (X-5).

    The stream's latest id, never an older one, or a first id for a ``start``
    that found nothing. 410 if the stream was deleted meanwhile.
    """
    at = now or timezone.now()

    def run() -> str:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                # Only the idle expiry moves here (unless an id is issued, below,
                # which makes the commit wait for the disk again): see the module.
                _execute("SET LOCAL synchronous_commit TO OFF", [])
            rows = _execute(
                f"UPDATE {_STREAM} SET last_seen_at = %s,"  # noqa: S608  (names from the models)
                f" expires_at = {_greatest()}(expires_at, %s)"
                " WHERE id = %s AND closed_at IS NULL RETURNING last_seq",
                [_db_time(at), _db_time(at + _idle(kind)), stream_id],
            )
            if not rows:
                raise StreamClosed(_closed_detail(kind))
            latest = (
                Interaction.objects.filter(stream_id=stream_id)
                .order_by("-seq")
                .values_list("id", flat=True)
                .first()
            )
            if latest is not None:
                return latest
            if connection.vendor == "postgresql":
                _execute("SET LOCAL synchronous_commit TO ON", [])
            return _issue(stream_id, item_count=0, now=at)

    result: str = _retrying_id_collisions(run)
    return result


def stream_delete(
    *, kind: StreamKind, key: str, interaction_id: str, now: datetime | None = None
) -> None:
    """DELETE: acknowledge everything the stream handed out and close it (X-6, X-9).

    Nothing is requeued. A stream that is already closed answers the same (a
    second DELETE); an id never issued, or of another key, is a 404.
    """
    at = now or timezone.now()
    with transaction.atomic():
        found = _find(kind, key, interaction_id, lock=True)
        if found is None:
            raise StreamNotFound(_not_found_detail(kind, interaction_id))
        stream, _ = found
        if stream.closed_at is not None:
            return
        acknowledged = _acknowledge(stream.id, up_to_seq=None, now=at)
        if acknowledged:
            Stream.objects.filter(id=stream.id).update(
                acknowledged_count=stream.acknowledged_count + acknowledged
            )
        reason = (
            Stream.CloseReason.EXPIRED if stream.expires_at <= at else Stream.CloseReason.DELETED
        )
        _close(stream.id, reason, at)


# --- Undoing an answer that never left ------------------------------------------------


def answer_withdraw(
    *, stream_id: int, interaction_id: str | None, abandon: bool, now: datetime | None = None
) -> int:
    """Undo what a request did for an answer its client never got (X-6, L-4).

    Its claim (``interaction_id``) is released: the items are pending again,
    the id is forgotten (a 404 from now on), and the kind's bell rings so
    that another waiting collector takes them at once. With ``abandon``, the
    stream was opened by this request and nobody learned its id: it is
    closed, which frees its slot. Returns the number of items released.
    """
    at = now or timezone.now()
    released = 0
    with transaction.atomic():
        stream = Stream.objects.select_for_update(no_key=True).filter(id=stream_id).first()
        if stream is None:
            return 0
        kind = kinds.get(stream.kind)
        if interaction_id is not None:
            table = kind.item_model._meta.db_table
            released = _update_count(
                f"UPDATE {table} SET delivered_at = NULL, interaction_id = NULL"  # noqa: S608
                " WHERE interaction_id = %s",
                [interaction_id],
            )
            gone = _execute(
                f"DELETE FROM {_INTERACTION} WHERE id = %s RETURNING item_count, acked_at",  # noqa: S608
                [interaction_id],
            )
            if gone:
                item_count, acked_at = gone[0]
                _execute(
                    f"UPDATE {_STREAM} SET delivered_count = delivered_count - %s,"  # noqa: S608
                    " acknowledged_count = acknowledged_count - %s WHERE id = %s",
                    [item_count, item_count if acked_at is not None else 0, stream_id],
                )
            if released:
                events.stream_released(
                    stream_id=stream_id,
                    kind=stream.kind,
                    key=stream.key,
                    interaction_id=interaction_id,
                    count=released,
                    tenant_id=kind.tenant_id(stream.key),
                    at=at,
                )
                live.ring(kind.channel, stream.key)
        if abandon:
            _close(stream_id, Stream.CloseReason.ABANDONED, at)
    return released


# --- The scheduler's sweep ------------------------------------------------------------


def streams_expire(*, now: datetime | None = None) -> int:
    """Close every open stream whose time is up (X-8), with its ``stream.closed`` event.

    Starts and requests close the streams of the key they touch as they go;
    this sweep closes the others, so the console and the admin show them
    closed within a sweep.
    """
    at = now or timezone.now()
    with transaction.atomic():
        return len(_expire(kind=None, key=None, now=at))


def streams_prune(*, now: datetime | None = None, batch: int = 500) -> dict[str, int]:
    """Delete what ``STREAMS_RETENTION`` lets go: closed streams (and their ids), reply items.

    Pix messages are the data and are never deleted here. A pruned stream's
    ids become "never issued" (404) rather than "closed" (410).
    """
    at = now or timezone.now()
    before = at - settings.STREAMS_RETENTION
    ids = list(
        Stream.objects.filter(closed_at__lt=before)
        .order_by("closed_at")
        .values_list("id", flat=True)[:batch]
    )
    streams = Stream.objects.filter(id__in=ids).delete()[1].get(Stream._meta.label, 0)
    items = ReplyItem.objects.filter(
        id__in=list(
            ReplyItem.objects.filter(created_at__lt=before).values_list("id", flat=True)[
                : batch * 20
            ]
        )
    ).delete()[0]
    return {"streams": streams, "reply_items": items}


# --- Reads used by the long poll ------------------------------------------------------


def pending_keys(*, kind: StreamKind, keys: list[str]) -> list[str]:
    """Those of ``keys`` with items pending, in one query (an index probe per key)."""
    found = [""] if "" in keys and pending_exists(kind=kind, key="") else []
    keyed = [key for key in keys if key]
    if not keyed:
        return found
    table = kind.item_model._meta.db_table
    rows = _execute(
        f"WITH waited (k) AS (VALUES {', '.join(['(%s)'] * len(keyed))})"  # noqa: S608
        f" SELECT k FROM waited WHERE EXISTS (SELECT 1 FROM {table}"
        f" WHERE {table}.{kind.key_column} = waited.k AND {table}.delivered_at IS NULL"
        f" AND {kind.item_condition})",
        [kind.key_param(key) for key in keyed],
    )
    by_param = {str(kind.key_param(key)): key for key in keyed}
    return found + [by_param[str(row[0])] for row in rows]


def pending_exists(*, kind: StreamKind, key: str) -> bool:
    condition, params = kind.pending_filter(key)
    table = kind.item_model._meta.db_table
    rows = _execute(
        f"SELECT 1 FROM {table} WHERE delivered_at IS NULL AND {condition} LIMIT 1",  # noqa: S608
        params,
    )
    return bool(rows)


# --- The steps ---------------------------------------------------------------------------


def _in_flight(kind: StreamKind) -> timedelta:
    """How long a request that arrives now may keep its stream from expiring."""
    return timedelta(seconds=kind.poll_seconds) + REQUEST_GRACE


def _idle(kind: StreamKind) -> timedelta:
    return timedelta(seconds=kind.idle_seconds)


def _lock_key(kind: str, key: str) -> None:
    """Serialise the starts of one (kind, key) until the transaction ends."""
    if connection.vendor != "postgresql":
        return  # IMMEDIATE transactions: SQLite has one writer at a time
    # hashtext collisions only make two keys take turns.
    _execute(
        "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
        [_STREAM_KEY_LOCK_CLASS, f"{kind}:{key}"],
    )


def _find(
    kind: StreamKind, key: str, interaction_id: str, *, lock: bool
) -> tuple[Stream, int] | None:
    """The stream an id was issued to (its row locked, with ``lock``), and the id's number.

    None for an id that is malformed, unknown, or issued to another kind or key.
    """
    if not ID_PATTERN.fullmatch(interaction_id):
        return None
    query = Interaction.objects.select_related("stream")
    if lock:
        query = query.select_for_update(of=("stream",), no_key=True)
    found = query.filter(id=interaction_id, stream__kind=kind.name, stream__key=key).first()
    if found is None:
        return None
    return found.stream, found.seq


def _claim(kind: StreamKind, stream_id: int, key: str, limit: int, now: datetime) -> Batch | None:
    """Claim up to ``limit`` pending items for the stream, exactly once (X-6).

    410 (and nothing claimed: the transaction rolls back) if the stream was
    closed meanwhile.

    One statement takes them: its SELECT picks the oldest pending items of
    the key and locks them, skipping rows another claim holds, and its
    UPDATE marks them, keeping ``delivered_at IS NULL`` as a guard should a
    row have changed between the two. Then the stream's counters, the
    interaction id that goes out with them, and the outbox event.

    On PostgreSQL the SELECT is a materialised CTE, not ``WHERE id IN
    (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)``: the planner may run such
    a subquery again for each row it updates, and each run locks the next
    pending rows, so one claim took 12 items with a limit of 10 (a test
    pins it). SQLite runs the subquery once, and serialises writers anyway.
    """
    interaction_id = new_interaction_id()
    condition, params = kind.pending_filter(key)
    table = kind.item_model._meta.db_table
    if connection.vendor == "postgresql":
        query = (
            f"WITH picked AS MATERIALIZED (SELECT id FROM {table}"  # noqa: S608
            f" WHERE delivered_at IS NULL AND {condition}"
            " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)"
            f" UPDATE {table} SET interaction_id = %s, delivered_at = %s FROM picked"
            f" WHERE {table}.id = picked.id AND {table}.delivered_at IS NULL"
            f" RETURNING {table}.id"
        )
        query_params = [*params, limit, interaction_id, _db_time(now)]
    else:
        query = (
            f"UPDATE {table} SET interaction_id = %s, delivered_at = %s"  # noqa: S608
            f" WHERE id IN (SELECT id FROM {table} WHERE delivered_at IS NULL AND {condition}"
            " ORDER BY id LIMIT %s) AND delivered_at IS NULL RETURNING id"
        )
        query_params = [interaction_id, _db_time(now), *params, limit]
    rows = _execute(query, query_params)
    if not rows:
        return None
    item_ids = sorted(int(row[0]) for row in rows)
    seq_rows = _execute(
        f"UPDATE {_STREAM} SET last_seq = last_seq + 1,"  # noqa: S608
        " delivered_count = delivered_count + %s, last_seen_at = %s,"
        f" expires_at = {_greatest()}(expires_at, %s)"
        " WHERE id = %s AND closed_at IS NULL RETURNING last_seq",
        [len(item_ids), _db_time(now), _db_time(now + _idle(kind)), stream_id],
    )
    if not seq_rows:
        raise StreamClosed(_closed_detail(kind))
    _insert_interaction(interaction_id, stream_id, seq_rows[0][0], len(item_ids), now)
    events.stream_delivered(
        stream_id=stream_id,
        kind=kind.name,
        key=key,
        interaction_id=interaction_id,
        count=len(item_ids),
        tenant_id=kind.tenant_id(key),
        at=now,
    )
    return Batch(interaction_id, item_ids)


def _issue(stream_id: int, *, item_count: int, now: datetime) -> str:
    """A new interaction id for the stream (its row locked), carrying no items."""
    interaction_id = new_interaction_id()
    seq_rows = _execute(
        f"UPDATE {_STREAM} SET last_seq = last_seq + 1 WHERE id = %s RETURNING last_seq",  # noqa: S608
        [stream_id],
    )
    _insert_interaction(interaction_id, stream_id, seq_rows[0][0], item_count, now)
    return interaction_id


def _insert_interaction(
    interaction_id: str, stream_id: int, seq: int, item_count: int, now: datetime
) -> None:
    inserted = _update_count(
        f"INSERT INTO {_INTERACTION} (id, stream_id, seq, issued_at, item_count)"  # noqa: S608
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
        [interaction_id, stream_id, seq, _db_time(now), item_count],
    )
    if not inserted:
        raise _IdTaken(interaction_id)


def _acknowledge(stream_id: int, *, up_to_seq: int | None, now: datetime) -> int:
    """Mark the stream's ids up to ``up_to_seq`` (all: None) acknowledged; items newly acked.

    Ids that carried no item (a 204's) have nothing to acknowledge and stay as they are.
    """
    bound = "" if up_to_seq is None else " AND seq <= %s"
    params: list[Any] = [_db_time(now), stream_id]
    if up_to_seq is not None:
        params.append(up_to_seq)
    rows = _execute(
        f"UPDATE {_INTERACTION} SET acked_at = %s"  # noqa: S608
        f" WHERE stream_id = %s AND acked_at IS NULL AND item_count > 0{bound}"
        " RETURNING item_count",
        params,
    )
    return sum(int(row[0]) for row in rows)


def _close(stream_id: int, reason: str, now: datetime) -> bool:
    """Close an open stream, with its event. An expiry re-checks the time under the row
    lock: a request that arrived meanwhile has moved it, and the stream lives on."""
    expired_only = " AND expires_at <= %s" if reason == Stream.CloseReason.EXPIRED else ""
    params: list[Any] = [_db_time(now), reason, stream_id]
    if expired_only:
        params.append(_db_time(now))
    rows = _execute(
        f"UPDATE {_STREAM} SET closed_at = %s, close_reason = %s"  # noqa: S608
        f" WHERE id = %s AND closed_at IS NULL{expired_only}"
        " RETURNING kind, key, delivered_count, acknowledged_count",
        params,
    )
    for kind_name, key, delivered, acknowledged in rows:
        events.stream_closed(
            stream_id=stream_id,
            kind=kind_name,
            key=key,
            reason=reason,
            delivered=delivered,
            acknowledged=acknowledged,
            tenant_id=kinds.get(kind_name).tenant_id(key),
            at=now,
        )
    return bool(rows)


def _expire(*, kind: StreamKind | None, key: str | None, now: datetime) -> list[int]:
    """Close the open streams (of one kind and key, or all) whose time is up."""
    where, params = "closed_at IS NULL AND expires_at <= %s", [_db_time(now)]
    if kind is not None:
        where += " AND kind = %s AND key = %s"
        params += [kind.name, key]
    rows = _execute(
        f"SELECT id FROM {_STREAM} WHERE {where} ORDER BY id",  # noqa: S608
        params,
    )
    return [row[0] for row in rows if _close(row[0], Stream.CloseReason.EXPIRED, now)]


def _update_count(query: str, params: list[Any]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return int(cursor.rowcount)


def _not_found_detail(kind: StreamKind, interaction_id: str) -> str:
    return (
        f"No {kind.name} stream of this {kind.key_label} was ever given the id {interaction_id!r}."
    )


def _closed_detail(kind: StreamKind) -> str:
    return f"This {kind.name} stream was deleted or expired. Open a new one with stream/start."


__all__ = [
    "ID_PATTERN",
    "Batch",
    "Begun",
    "answer_withdraw",
    "pending_exists",
    "stream_claim",
    "stream_delete",
    "stream_finish",
    "stream_resume",
    "stream_start",
    "streams_expire",
    "streams_prune",
]
