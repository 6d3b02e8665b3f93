"""What the service modules share: the results, SQL helpers, closing, ids."""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import structlog
from django.db import connection

from parley.streams import events, kinds
from parley.streams.kinds import StreamKind
from parley.streams.models import Interaction, Stream

log = structlog.get_logger(__name__)
T = TypeVar("T")

# Interaction ids: 12 lowercase alphanumerics, from the OS's randomness.
ID_ALPHABET = string.ascii_lowercase + string.digits
ID_LENGTH = 12
ID_PATTERN = re.compile(r"[a-z0-9]{12}")
# How much longer than its kind's poll time a request may take (its claim, its
# answer) before its stream may expire under it: a request announces
# "poll + grace" when it arrives (X-8: never expire a stream mid-request).
REQUEST_GRACE = timedelta(seconds=2)
# Interaction id collisions (36^12 values) are retried this many times.
ID_ATTEMPTS = 5

STREAM_TABLE = Stream._meta.db_table
INTERACTION_TABLE = Interaction._meta.db_table


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


class IdTaken(Exception):
    """The random interaction id exists already: the transaction is run again."""


def new_interaction_id() -> str:
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))


def retrying_id_collisions(run: Callable[[], T]) -> T:
    for _ in range(ID_ATTEMPTS):
        try:
            return run()
        except IdTaken:
            log.warning("stream_interaction_id_collision")
    raise RuntimeError("could not issue a unique interaction id")


def greatest() -> str:
    return "GREATEST" if connection.vendor == "postgresql" else "MAX"


def execute(query: str, params: list[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return list(cursor.fetchall()) if cursor.description else []


def db_time(moment: datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(moment)


def in_flight(kind: StreamKind) -> timedelta:
    """How long a request that arrives now may keep its stream from expiring."""
    return timedelta(seconds=kind.poll_seconds) + REQUEST_GRACE


def idle(kind: StreamKind) -> timedelta:
    return timedelta(seconds=kind.idle_seconds)


def update_count(query: str, params: list[Any]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return int(cursor.rowcount)


def not_found_detail(kind: StreamKind, interaction_id: str) -> str:
    return (
        f"No {kind.name} stream of this {kind.key_label} was ever given the id {interaction_id!r}."
    )


def closed_detail(kind: StreamKind) -> str:
    return f"This {kind.name} stream was deleted or expired. Open a new one with stream/start."


def insert_interaction(
    interaction_id: str, stream_id: int, seq: int, item_count: int, now: datetime
) -> None:
    inserted = update_count(
        f"INSERT INTO {INTERACTION_TABLE} (id, stream_id, seq, issued_at, item_count)"  # noqa: S608
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
        [interaction_id, stream_id, seq, db_time(now), item_count],
    )
    if not inserted:
        raise IdTaken(interaction_id)


def issue(stream_id: int, *, item_count: int, now: datetime) -> str:
    """A new interaction id for the stream (its row locked), carrying no items."""
    interaction_id = new_interaction_id()
    seq_rows = execute(
        f"UPDATE {STREAM_TABLE} SET last_seq = last_seq + 1 WHERE id = %s RETURNING last_seq",  # noqa: S608
        [stream_id],
    )
    insert_interaction(interaction_id, stream_id, seq_rows[0][0], item_count, now)
    return interaction_id


def close_stream(stream_id: int, reason: str, now: datetime) -> bool:
    """Close an open stream, with its event. An expiry re-checks the time under the row
    lock: a request that arrived meanwhile has moved it, and the stream lives on."""
    expired_only = " AND expires_at <= %s" if reason == Stream.CloseReason.EXPIRED else ""
    params: list[Any] = [db_time(now), reason, stream_id]
    if expired_only:
        params.append(db_time(now))
    rows = execute(
        f"UPDATE {STREAM_TABLE} SET closed_at = %s, close_reason = %s"  # noqa: S608
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


def expire_streams(*, kind: StreamKind | None, key: str | None, now: datetime) -> list[int]:
    """Close the open streams (of one kind and key, or all) whose time is up."""
    where, params = "closed_at IS NULL AND expires_at <= %s", [db_time(now)]
    if kind is not None:
        where += " AND kind = %s AND key = %s"
        params += [kind.name, key]
    rows = execute(
        f"SELECT id FROM {STREAM_TABLE} WHERE {where} ORDER BY id",  # noqa: S608
        params,
    )
    return [row[0] for row in rows if close_stream(row[0], Stream.CloseReason.EXPIRED, now)]
