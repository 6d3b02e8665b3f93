"""Claiming items, and giving back a claim whose answer never left (X-6, L-4)."""

from __future__ import annotations

from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from parley.live import services as live
from parley.streams import events, kinds
from parley.streams.errors import StreamClosed
from parley.streams.kinds import StreamKind
from parley.streams.models import Stream
from parley.streams.services._common import (
    INTERACTION_TABLE,
    STREAM_TABLE,
    Batch,
    close_stream,
    closed_detail,
    db_time,
    execute,
    greatest,
    idle,
    insert_interaction,
    new_interaction_id,
    retrying_id_collisions,
    update_count,
)


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
            return claim_items(kind, stream_id, key, limit, at)

    result: Batch | None = retrying_id_collisions(run)
    return result


def claim_items(
    kind: StreamKind, stream_id: int, key: str, limit: int, now: datetime
) -> Batch | None:
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
        query_params = [*params, limit, interaction_id, db_time(now)]
    else:
        query = (
            f"UPDATE {table} SET interaction_id = %s, delivered_at = %s"  # noqa: S608
            f" WHERE id IN (SELECT id FROM {table} WHERE delivered_at IS NULL AND {condition}"
            " ORDER BY id LIMIT %s) AND delivered_at IS NULL RETURNING id"
        )
        query_params = [interaction_id, db_time(now), *params, limit]
    rows = execute(query, query_params)
    if not rows:
        return None
    item_ids = sorted(int(row[0]) for row in rows)
    seq_rows = execute(
        f"UPDATE {STREAM_TABLE} SET last_seq = last_seq + 1,"  # noqa: S608
        " delivered_count = delivered_count + %s, last_seen_at = %s,"
        f" expires_at = {greatest()}(expires_at, %s)"
        " WHERE id = %s AND closed_at IS NULL RETURNING last_seq",
        [len(item_ids), db_time(now), db_time(now + idle(kind)), stream_id],
    )
    if not seq_rows:
        raise StreamClosed(closed_detail(kind))
    insert_interaction(interaction_id, stream_id, seq_rows[0][0], len(item_ids), now)
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
            released = update_count(
                f"UPDATE {table} SET delivered_at = NULL, interaction_id = NULL"  # noqa: S608
                " WHERE interaction_id = %s",
                [interaction_id],
            )
            gone = execute(
                f"DELETE FROM {INTERACTION_TABLE} WHERE id = %s RETURNING item_count, acked_at",  # noqa: S608
                [interaction_id],
            )
            if gone:
                item_count, acked_at = gone[0]
                execute(
                    f"UPDATE {STREAM_TABLE} SET delivered_count = delivered_count - %s,"  # noqa: S608
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
            close_stream(stream_id, Stream.CloseReason.ABANDONED, at)
    return released


def pending_keys(*, kind: StreamKind, keys: list[str]) -> list[str]:
    """Those of ``keys`` with items pending, in one query (an index probe per key)."""
    found = [""] if "" in keys and pending_exists(kind=kind, key="") else []
    keyed = [key for key in keys if key]
    if not keyed:
        return found
    table = kind.item_model._meta.db_table
    rows = execute(
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
    rows = execute(
        f"SELECT 1 FROM {table} WHERE delivered_at IS NULL AND {condition} LIMIT 1",  # noqa: S608
        params,
    )
    return bool(rows)
