"""Opening a stream, continuing it, ending a request, deleting it (X-5, X-7 to X-9)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from parley.streams import events
from parley.streams.errors import StreamClosed, StreamNotFound, TooManyStreams
from parley.streams.kinds import StreamKind
from parley.streams.models import Interaction, Stream
from parley.streams.services._common import (
    ID_PATTERN,
    INTERACTION_TABLE,
    STREAM_TABLE,
    Begun,
    close_stream,
    closed_detail,
    db_time,
    execute,
    expire_streams,
    greatest,
    idle,
    in_flight,
    issue,
    not_found_detail,
    retrying_id_collisions,
)
from parley.streams.services.claims import claim_items

_STREAM_KEY_LOCK_CLASS = 0x50_61_74  # "Pat": the first key of the start lock (parley.core.db)


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
            expire_streams(kind=kind, key=key, now=at)
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
                    expires_at=at + in_flight(kind),
                )
                events.stream_opened(
                    stream_id=stream.id,
                    kind=kind.name,
                    key=key,
                    slot=slot,
                    tenant_id=kind.tenant_id(key),
                    at=at,
                )
                begun = Begun(stream.id, claim_items(kind, stream.id, key, limit, at))
        if begun is None:
            assert retry_after is not None
            raise TooManyStreams(
                f"This {kind.key_label} already has {kind.max_streams} open streams. "
                "Delete one, or retry after the time in Retry-After.",
                retry_after_seconds=retry_after.total_seconds(),
            )
        return begun

    result: Begun = retrying_id_collisions(run)
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
            stream, seq = _find(kind, key, interaction_id, lock=False)
            if stream.closed_at is not None:
                closed = True
            elif stream.expires_at <= at:
                # Expired: closed now if the sweep has not yet (or a request of
                # it moved the time meanwhile: then it is not closed after all).
                closed = close_stream(stream.id, Stream.CloseReason.EXPIRED, at)
            if not closed:
                acknowledged = _acknowledge(stream.id, up_to_seq=seq, now=at)
                horizon = at + in_flight(kind)
                if acknowledged or stream.expires_at < horizon:
                    execute(
                        f"UPDATE {STREAM_TABLE} SET"  # noqa: S608  (names from the models)
                        f" expires_at = {greatest()}(expires_at, %s),"
                        " acknowledged_count = acknowledged_count + %s WHERE id = %s",
                        [db_time(horizon), acknowledged, stream.id],
                    )
                begun = Begun(stream.id, claim_items(kind, stream.id, key, limit, at))
        if closed:
            raise StreamClosed(closed_detail(kind))
        assert begun is not None
        return begun

    result: Begun = retrying_id_collisions(run)
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
                execute("SET LOCAL synchronous_commit TO OFF", [])
            rows = execute(
                f"UPDATE {STREAM_TABLE} SET last_seen_at = %s,"  # noqa: S608  (names from the models)
                f" expires_at = {greatest()}(expires_at, %s)"
                " WHERE id = %s AND closed_at IS NULL RETURNING last_seq",
                [db_time(at), db_time(at + idle(kind)), stream_id],
            )
            if not rows:
                raise StreamClosed(closed_detail(kind))
            latest = (
                Interaction.objects.filter(stream_id=stream_id)
                .order_by("-seq")
                .values_list("id", flat=True)
                .first()
            )
            if latest is not None:
                return latest
            if connection.vendor == "postgresql":
                execute("SET LOCAL synchronous_commit TO ON", [])
            return issue(stream_id, item_count=0, now=at)

    result: str = retrying_id_collisions(run)
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
        stream, _ = _find(kind, key, interaction_id, lock=True)
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
        close_stream(stream.id, reason, at)


def _lock_key(kind: str, key: str) -> None:
    """Serialise the starts of one (kind, key) until the transaction ends."""
    if connection.vendor != "postgresql":
        return  # IMMEDIATE transactions: SQLite has one writer at a time
    # hashtext collisions only make two keys take turns.
    execute(
        "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
        [_STREAM_KEY_LOCK_CLASS, f"{kind}:{key}"],
    )


def _find(kind: StreamKind, key: str, interaction_id: str, *, lock: bool) -> tuple[Stream, int]:
    """The stream an id was issued to (its row locked, with ``lock``), and the id's number.

    404 for an id that is malformed, unknown, or issued to another kind or key.
    """
    found = None
    if ID_PATTERN.fullmatch(interaction_id):
        query = Interaction.objects.select_related("stream")
        if lock:
            query = query.select_for_update(of=("stream",), no_key=True)
        found = query.filter(id=interaction_id, stream__kind=kind.name, stream__key=key).first()
    if found is None:
        raise StreamNotFound(not_found_detail(kind, interaction_id))
    return found.stream, found.seq


def _acknowledge(stream_id: int, *, up_to_seq: int | None, now: datetime) -> int:
    """Mark the stream's ids up to ``up_to_seq`` (all: None) acknowledged; items newly acked.

    Ids that carried no item (a 204's) have nothing to acknowledge and stay as they are.
    """
    bound = "" if up_to_seq is None else " AND seq <= %s"
    params: list[Any] = [db_time(now), stream_id]
    if up_to_seq is not None:
        params.append(up_to_seq)
    rows = execute(
        f"UPDATE {INTERACTION_TABLE} SET acked_at = %s"  # noqa: S608
        f" WHERE stream_id = %s AND acked_at IS NULL AND item_count > 0{bound}"
        " RETURNING item_count",
        params,
    )
    return sum(int(row[0]) for row in rows)
