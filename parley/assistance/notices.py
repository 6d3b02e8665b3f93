"""What a delivery says: its Notice, and where it goes: its Target."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from rest_framework.fields import DateTimeField

from parley.assistance import channels
from parley.assistance.channels import ChannelKind, Notice, Outcome
from parley.assistance.crypto import EncryptedConfigField
from parley.assistance.models import Channel, Delivery
from parley.conversations.models import Message

_iso = DateTimeField().to_representation
REPLY_TARGET_NAME = "reply-webhook"


@dataclass(frozen=True)
class Target:
    kind: ChannelKind
    config: dict[str, Any]
    name: str
    rate_per_second: float
    burst: int
    channel: Channel | None


def target_for(delivery: Delivery) -> Target | Outcome:
    """Where ``delivery`` goes, or the permanent Outcome that says why it cannot go."""
    if delivery.purpose == Delivery.Purpose.REPLY:
        if not settings.REPLY_WEBHOOK_URL:
            return Outcome.permanent("reply webhook not configured")
        config = {"url": settings.REPLY_WEBHOOK_URL, "secret": settings.REPLY_WEBHOOK_SECRET}
        return Target(channels.get("webhook"), config, REPLY_TARGET_NAME, 0.0, 1, None)
    channel = delivery.channel
    assert channel is not None
    if not channel.active:
        return Outcome.permanent("channel inactive")
    if channel.kind not in channels.KINDS:
        return Outcome.permanent(f"unknown channel kind {channel.kind!r}")
    if channel.config.get(EncryptedConfigField.UNREADABLE):
        return Outcome.permanent("channel config cannot be decrypted with ASSISTANCE_CONFIG_KEYS")
    kind = channels.get(channel.kind)
    config = kind.resolve(channel.config)
    if not config:
        return Outcome.permanent("channel not configured")
    rate = kind.rate_per_second if channel.rate_per_second is None else channel.rate_per_second
    burst = kind.burst if channel.burst is None else channel.burst
    return Target(kind, config, channel.name, rate, burst, channel)


def notice_for(delivery: Delivery) -> Notice | Outcome:
    if delivery.purpose == Delivery.Purpose.REPLY:
        return _reply_notice(delivery)
    data = {
        "id": str(delivery.id),
        "topic": delivery.topic,
        "description": delivery.description,
        "conversation_id": str(delivery.conversation_id) if delivery.conversation_id else None,
        "metadata": delivery.metadata,
        "created_at": _iso(delivery.created_at),
    }
    lines = [delivery.description, ""]
    if delivery.conversation_id:
        lines.append(f"Conversation: {delivery.conversation_id}")
    if delivery.metadata:
        lines.append(f"Metadata: {json.dumps(delivery.metadata, ensure_ascii=False)}")
    return Notice(
        key=str(delivery.id),
        type="assistance.requested",
        data=data,
        title=f"Assistance requested: {delivery.topic}",
        text="\n".join(lines).strip(),
        occurred_at=delivery.created_at,
    )


def _reply_notice(delivery: Delivery) -> Notice | Outcome:
    """The reply item of X-12: ``{id, conversation_id, content, timestamp, in_reply_to}``."""
    reply = (
        Message.objects.filter(pk=delivery.id, type=Message.Type.OUTBOUND)
        .values("conversation_id", "content", "timestamp", "reply_to_id")
        .first()
    )
    if reply is None:
        return Outcome.permanent("the reply no longer exists")
    answered = Message.objects.filter(group_id=reply["reply_to_id"]).order_by(
        "timestamp", "received_at", "id"
    )
    data = {
        "id": str(delivery.id),
        "conversation_id": str(reply["conversation_id"]),
        "content": reply["content"],
        "timestamp": _iso(reply["timestamp"]),
        "in_reply_to": [str(pk) for pk in answered.values_list("id", flat=True)]
        if reply["reply_to_id"]
        else [],
    }
    return Notice(
        key=str(delivery.id),
        type="reply.sent",
        data=data,
        title="Reply sent",
        text=reply["content"],
        occurred_at=reply["timestamp"],
    )
