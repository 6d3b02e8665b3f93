"""The stream facts, as outbox events (STYLE "Outbox"), for the console and analytics.

One function per fact, called in the transaction that makes it true. The
``subject`` is the stream's key (an ISPB, a tenant id, or "" for a reply
stream of every tenant); ``data`` carries the ids and counts a reader needs
to show open streams per key and what they handed out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from parley.outbox.services import event_append

STREAM_OPENED = "stream.opened"
STREAM_DELIVERED = "stream.delivered"
STREAM_RELEASED = "stream.released"
STREAM_CLOSED = "stream.closed"


def _append(
    type: str,
    *,
    stream_id: int,
    kind: str,
    key: str,
    tenant_id: UUID | None,
    at: datetime,
    **data: Any,
) -> None:
    event_append(
        type=type,
        occurred_at=at,
        tenant_id=tenant_id,
        subject=key,
        data={"stream_id": stream_id, "kind": kind, "key": key, **data},
    )


def stream_opened(
    *, stream_id: int, kind: str, key: str, slot: int, tenant_id: UUID | None, at: datetime
) -> None:
    _append(
        STREAM_OPENED,
        stream_id=stream_id,
        kind=kind,
        key=key,
        tenant_id=tenant_id,
        at=at,
        slot=slot,
    )


def stream_delivered(
    *,
    stream_id: int,
    kind: str,
    key: str,
    interaction_id: str,
    count: int,
    tenant_id: UUID | None,
    at: datetime,
) -> None:
    """``count`` items left in the answer that issued ``interaction_id``."""
    _append(
        STREAM_DELIVERED,
        stream_id=stream_id,
        kind=kind,
        key=key,
        tenant_id=tenant_id,
        at=at,
        interaction_id=interaction_id,
        count=count,
    )


def stream_released(
    *,
    stream_id: int,
    kind: str,
    key: str,
    interaction_id: str,
    count: int,
    tenant_id: UUID | None,
    at: datetime,
) -> None:
    """The answer of a ``stream.delivered`` never reached its client: its items are pending
    again."""
    _append(
        STREAM_RELEASED,
        stream_id=stream_id,
        kind=kind,
        key=key,
        tenant_id=tenant_id,
        at=at,
        interaction_id=interaction_id,
        count=count,
    )


def stream_closed(
    *,
    stream_id: int,
    kind: str,
    key: str,
    reason: str,
    delivered: int,
    acknowledged: int,
    tenant_id: UUID | None,
    at: datetime,
) -> None:
    _append(
        STREAM_CLOSED,
        stream_id=stream_id,
        kind=kind,
        key=key,
        tenant_id=tenant_id,
        at=at,
        reason=reason,
        delivered=delivered,
        acknowledged=acknowledged,
    )
