"""Reading the outbox in commit order (``models`` explains the positions)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import connection

from parley.outbox.models import OutboxEvent

# A reader's position: (txid, id) of the last event it has read.
Position = tuple[int, int]
START: Position = (0, 0)
_LAST_ID = 2**63 - 1

_TABLE = OutboxEvent._meta.db_table
_AFTER_POSTGRESQL = f"""
    SELECT id, txid, type, occurred_at, tenant_id, subject, data FROM {_TABLE}
    WHERE (txid, id) > (%s, %s)
      AND txid < parley_outbox_horizon()
    ORDER BY txid, id
    LIMIT %s
"""  # noqa: S608  (table name from the model)


@dataclass(frozen=True)
class Event:
    id: int
    txid: int
    type: str
    occurred_at: datetime
    tenant_id: UUID | None
    subject: str
    data: dict[str, Any]

    @property
    def position(self) -> Position:
        return (self.txid, self.id)


def events_after(position: Position, *, limit: int = 500) -> list[Event]:
    """Up to ``limit`` committed events after ``position``, in commit order.

    An event whose transaction is older than some transaction still running
    waits for it (a short wait: transactions here last milliseconds).
    """
    if connection.vendor != "postgresql":
        rows = OutboxEvent.objects.filter(id__gt=position[1]).order_by("id")[:limit]
        return [Event(r.id, 0, r.type, r.occurred_at, r.tenant_id, r.subject, r.data) for r in rows]
    with connection.cursor() as cursor:
        cursor.execute(_AFTER_POSTGRESQL, [position[0], position[1], limit])
        rows = cursor.fetchall()
    # Django has psycopg load jsonb as text (JSONField parses it itself).
    return [
        Event(event_id, txid, kind, occurred_at, tenant_id, subject, json.loads(data))
        for event_id, txid, kind, occurred_at, tenant_id, subject, data in rows
    ]


def current_position() -> Position:
    """A position such that every event committed by now is at or before it.

    Rendering a page after taking it and then reading on from it may show an
    event twice (once in the page, once read), never miss one.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT parley_outbox_horizon()")
            (horizon,) = cursor.fetchone()
            return (int(horizon) - 1, _LAST_ID)
        cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {_TABLE}")  # noqa: S608
        (last,) = cursor.fetchone()
        return (0, int(last))


def encode(position: Position) -> str:
    """A position as text, for an SSE ``id`` or a URL: ``txid-id``."""
    return f"{position[0]}-{position[1]}"


def decode(text: str) -> Position:
    """The position :func:`encode` wrote; ``ValueError`` for anything else."""
    txid, _, event_id = text.strip().partition("-")
    if not (txid.isdigit() and event_id.isdigit() and len(txid) < 20 and len(event_id) < 20):
        raise ValueError(f"not an outbox position: {text!r}")
    return (int(txid), int(event_id))
