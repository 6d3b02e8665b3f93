"""Reads of the assistance app."""

from __future__ import annotations

from uuid import UUID

from django.db.models import Prefetch

from parley.assistance.models import Attempt, Channel, Delivery, Topic


def request_with_history(*, request_id: UUID) -> Delivery | None:
    """An assistance request with its channel and attempts: two queries."""
    return (
        Delivery.objects.filter(pk=request_id, purpose=Delivery.Purpose.ASSISTANCE)
        .select_related("channel")
        .prefetch_related(Prefetch("history", queryset=Attempt.objects.order_by("n")))
        .first()
    )


def topics() -> list[Topic]:
    return list(Topic.objects.select_related("channel").order_by("slug"))


def channel_list() -> list[Channel]:
    return list(Channel.objects.order_by("name"))
