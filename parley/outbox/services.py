"""Writing to the outbox: one row per fact, in the caller's transaction.

Call :func:`event_append` inside the transaction that makes the fact true;
the row commits or rolls back with it. PostgreSQL functions on the hot paths
insert their rows themselves (``parley_outbox_append`` in migration 0002 of
this app), with the same columns and the same :func:`iso` times.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from parley.core import sql
from parley.outbox.models import OutboxCursor, OutboxEvent

# The NOTIFY channel that rings when the outbox grows (console streams).
OUTBOX_CHANNEL = "parley_outbox"

_EVENT_TABLE = OutboxEvent._meta.db_table
_APPEND = f"""
    INSERT INTO {_EVENT_TABLE} (type, occurred_at, tenant_id, subject, data)
    VALUES (%s, %s, %s, %s, %s)
"""  # noqa: S608  (table name from the model)
# PostgreSQL: the same INSERT, and a NOTIFY only while someone listens
# (parley.live.models says why), in one round trip.
_APPEND_AND_RING = f"""
    WITH appended AS ({_APPEND} RETURNING id)
    SELECT parley_ring(%s)
"""


def iso(moment: datetime) -> str:
    """The outbox's time format, UTC with microseconds, as the SQL functions write it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_append(
    *,
    type: str,
    occurred_at: datetime,
    tenant_id: UUID | None,
    subject: str | UUID,
    data: Mapping[str, Any],
) -> None:
    """Record a fact in the outbox, inside the caller's transaction."""
    field = lambda name: sql.field(OutboxEvent, name)  # noqa: E731
    params = [
        (field("type"), type),
        (field("occurred_at"), occurred_at),
        (field("tenant_id"), tenant_id),
        (field("subject"), str(subject)),
        (field("data"), dict(data)),
    ]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_APPEND_AND_RING, [*sql.adapt(params), OUTBOX_CHANNEL])
    else:
        sql.execute(_APPEND, params)


def cursor_advance(*, name: str, position: tuple[int, int]) -> None:
    """Save a durable reader's position: everything at or before it has been read."""
    OutboxCursor.objects.update_or_create(
        name=name, defaults={"txid": position[0], "event_id": position[1]}
    )


def events_prune(*, now: datetime | None = None) -> int:
    """Delete events older than ``OUTBOX_RETENTION`` that every durable reader has read."""
    now = now or timezone.now()
    old = OutboxEvent.objects.filter(occurred_at__lt=now - settings.OUTBOX_RETENTION)
    for cursor in OutboxCursor.objects.all():
        # (txid, id) <= (cursor.txid, cursor.event_id), spelled for the ORM.
        old = old.filter(Q(txid__lt=cursor.txid) | Q(txid=cursor.txid, id__lte=cursor.event_id))
    deleted, _ = old.delete()
    return deleted
