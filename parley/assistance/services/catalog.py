"""Channels and topics (A-3), checked against the kinds' schemas on every save."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from rest_framework.exceptions import ValidationError

from parley.assistance import channels
from parley.assistance.models import Channel, Topic


def channel_config_checked(kind: str, config: Any) -> dict[str, Any]:
    """``config`` as the kind's schema accepts it; ValidationError under ``config`` otherwise."""
    if kind not in channels.KINDS:
        raise ValidationError(
            {
                "kind": [
                    f"Unknown kind {kind!r}; the kinds are: {', '.join(sorted(channels.KINDS))}."
                ]
            }
        )
    try:
        return channels.get(kind).validate(config)
    except ValidationError as exc:
        raise ValidationError({"config": exc.detail}) from exc


def channel_save(*, channel: Channel | None = None, **changes: Any) -> Channel:
    """Create a channel, or change one; a new kind or config is checked together (A-3).

    Changing the kind without a new config checks the current config against
    the new kind, so a channel never holds a config its kind cannot read.
    """
    channel = channel or Channel()
    kind = changes.get("kind", channel.kind)
    if "config" in changes or "kind" in changes:
        changes["config"] = channel_config_checked(kind, changes.get("config", channel.config))
    for name, value in changes.items():
        setattr(channel, name, value)
    with transaction.atomic():
        channel.save()
    return channel


def topic_save(*, topic: Topic | None = None, **changes: Any) -> Topic:
    """Create a topic, or change one; slugs are kept trimmed and lower-case (A-3)."""
    topic = topic or Topic()
    if "slug" in changes:
        changes["slug"] = changes["slug"].strip().lower()
    for name, value in changes.items():
        setattr(topic, name, value)
    with transaction.atomic():
        topic.save()
    return topic
