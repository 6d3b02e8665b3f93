"""The scheduler's sweep: expiry (X-8) and retention."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from parley.streams.models import ReplyItem, Stream
from parley.streams.services._common import (
    expire_streams,
)


def streams_expire(*, now: datetime | None = None) -> int:
    """Close every open stream whose time is up (X-8), with its ``stream.closed`` event.

    Starts and requests close the streams of the key they touch as they go;
    this sweep closes the others, so the console and the admin show them
    closed within a sweep.
    """
    at = now or timezone.now()
    with transaction.atomic():
        return len(expire_streams(kind=None, key=None, now=at))


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
