"""Reads of the streams: for the views, the admin and the console."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q, Sum
from django.utils import timezone

from parley.streams.kinds import StreamKind
from parley.streams.models import Interaction, Stream
from parley.streams.services import ID_PATTERN


def stream_key_of(*, kind: StreamKind, interaction_id: str) -> str | None:
    """The key of the stream of ``kind`` that issued this id; None if none did."""
    if not ID_PATTERN.fullmatch(interaction_id):
        return None
    key: str | None = (
        Interaction.objects.filter(id=interaction_id, stream__kind=kind.name)
        .values_list("stream__key", flat=True)
        .first()
    )
    return key


@dataclass(frozen=True)
class OpenStreams:
    kind: str
    key: str
    open: int
    delivered: int
    acknowledged: int


def open_streams_by_key() -> list[OpenStreams]:
    """Streams open now (an expired one counts as closed, swept or not), per kind and key.

    One query; what the admin's summary and the console's collectors panel show.
    """
    rows = (
        Stream.objects.filter(Q(closed_at__isnull=True) & Q(expires_at__gt=timezone.now()))
        .values("kind", "key")
        .annotate(
            open=Count("id"),
            delivered=Sum("delivered_count"),
            acknowledged=Sum("acknowledged_count"),
        )
        .order_by("kind", "key")
    )
    return [
        OpenStreams(r["kind"], r["key"], r["open"], r["delivered"] or 0, r["acknowledged"] or 0)
        for r in rows
    ]
