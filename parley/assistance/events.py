"""The assistance facts, as outbox events (SPEC T-4 for analytics, C-3 for the console).

Each is written in the transaction that makes it true. The console renders
from the database, so ``data`` carries ids and the few values analytics
needs (the topic, the channel's kind and name, the attempts).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from parley.assistance.models import Delivery
from parley.outbox.services import event_append, iso

REQUESTED = "assistance.requested"
RETRY_SCHEDULED = "assistance.retry_scheduled"
SENT = "assistance.sent"
FAILED = "assistance.failed"


def event_data(delivery: Delivery, type: str) -> dict[str, Any]:
    """The ``data`` of ``type`` for ``delivery`` as it now is (the record statement's too)."""
    extra: dict[str, Any] = {}
    if type == RETRY_SCHEDULED:
        assert delivery.next_attempt_at is not None
        extra = {
            "next_attempt_at": iso(delivery.next_attempt_at),
            "error": delivery.last_error,
            "by_operator": False,
        }
    elif type == FAILED:
        extra = {"error": delivery.last_error}
    return {**_data(delivery), **extra}


def _data(delivery: Delivery) -> dict[str, Any]:
    channel = delivery.channel
    return {
        "request_id": str(delivery.id),
        "topic": delivery.topic,
        "channel_kind": channel.kind if channel else None,
        "channel_name": channel.name if channel else None,
        "conversation_id": str(delivery.conversation_id) if delivery.conversation_id else None,
        "attempts": delivery.attempts,
    }


def _append(type: str, delivery: Delivery, occurred_at: datetime, **extra: Any) -> None:
    if delivery.purpose != Delivery.Purpose.ASSISTANCE:
        return  # a pushed reply's facts are its reply.sent
    event_append(
        type=type,
        occurred_at=occurred_at,
        tenant_id=delivery.tenant_id,
        # T-4: the subject is the conversation; a request without one is its own.
        subject=str(delivery.conversation_id or delivery.id),
        data={**_data(delivery), **extra},
    )


def requested(delivery: Delivery) -> None:
    _append(REQUESTED, delivery, delivery.created_at)


def retry_scheduled(delivery: Delivery, *, at: datetime, by_operator: bool = False) -> None:
    assert delivery.next_attempt_at is not None
    _append(
        RETRY_SCHEDULED,
        delivery,
        at,
        next_attempt_at=iso(delivery.next_attempt_at),
        error=delivery.last_error,
        by_operator=by_operator,
    )


def sent(delivery: Delivery) -> None:
    assert delivery.sent_at is not None
    _append(SENT, delivery, delivery.sent_at)


def failed(delivery: Delivery) -> None:
    assert delivery.failed_at is not None
    _append(FAILED, delivery, delivery.failed_at, error=delivery.last_error)
