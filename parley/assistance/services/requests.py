"""A request is stored, published after commit, and (once FAILED) retried by an operator."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import structlog
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from parley.assistance import events
from parley.assistance.errors import DeliveryNotFailed, IdempotencyKeyReused, UnknownTopic
from parley.assistance.models import Delivery, IdempotencyKey, Topic
from parley.assistance.services._common import publish_after_commit
from parley.conversations.models import Conversation

log = structlog.get_logger(__name__)

Render = Callable[[Delivery], dict[str, Any]]


@dataclass(frozen=True)
class Submitted:
    delivery_id: UUID
    body: dict[str, Any]  # the representation answered; for a replay, the first answer
    replay: bool


def topic_slug(topic: str) -> str:
    """A-3: ``" Sales "`` is ``sales``."""
    return topic.strip().lower()


def request_hash(
    *, slug: str, description: str, conversation_id: UUID | None, metadata: dict[str, Any]
) -> str:
    """What "the same body" means for A-8: the fields Parley reads, canonically."""
    canonical = json.dumps(
        [slug, description, str(conversation_id) if conversation_id else None, metadata],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def request_submit(
    *,
    topic: str,
    description: str,
    conversation_id: UUID | None = None,
    metadata: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    render: Render,
) -> Submitted:
    """Store an assistance request (A-1) and publish it once committed.

    1. With an ``idempotency_key`` seen in the last 24 h: the same body gets
       the first answer again, another body 422 (A-8), and nothing is stored.
    2. The topic must be known and active, and its channel active (A-3).
    3. One transaction: the request (PENDING, due for the sweep after a short
       grace), its ``assistance.requested`` event and the key with the
       answer. The key is written last: a concurrent POST with the same key
       waits on its unique index until this one commits, then fails, rolls
       back everything it wrote, and answers the stored answer instead.
    4. After commit, a task attempts it at once (the fast path).
    """
    slug = topic_slug(topic)
    metadata = metadata or {}
    fingerprint = request_hash(
        slug=slug, description=description, conversation_id=conversation_id, metadata=metadata
    )
    if idempotency_key is not None:
        earlier = _replay(idempotency_key, fingerprint)
        if earlier is not None:
            return earlier
    try:
        with transaction.atomic():
            delivery, body = _store(slug, description, conversation_id, metadata, render)
            if idempotency_key is not None:
                IdempotencyKey.objects.create(
                    key=idempotency_key,
                    request_hash=fingerprint,
                    delivery=delivery,
                    response=body,
                    created_at=delivery.created_at,
                )
            publish_after_commit(delivery.id)
    except IntegrityError:
        earlier = _replay(idempotency_key, fingerprint) if idempotency_key is not None else None
        if earlier is None:
            raise
        return earlier
    log.info(
        "assistance_requested",
        request_id=str(delivery.id),
        topic=slug,
        channel=delivery.channel.name if delivery.channel else None,
    )
    return Submitted(delivery.id, body, replay=False)


def _store(
    slug: str,
    description: str,
    conversation_id: UUID | None,
    metadata: dict[str, Any],
    render: Render,
) -> tuple[Delivery, dict[str, Any]]:
    topic = (
        Topic.objects.select_related("channel")
        .filter(slug=slug, active=True, channel__active=True)
        .first()
    )
    if topic is None:
        raise UnknownTopic(f"No active topic {slug!r}.")
    tenant_id = settings.DEFAULT_TENANT_ID
    if conversation_id is not None:
        found = (
            Conversation.objects.filter(pk=conversation_id)
            .values_list("tenant_id", flat=True)
            .first()
        )
        tenant_id = found or tenant_id
    now = timezone.now()
    delivery = Delivery(
        purpose=Delivery.Purpose.ASSISTANCE,
        topic=slug,
        channel=topic.channel,
        description=description,
        conversation_id=conversation_id,
        metadata=metadata,
        tenant_id=tenant_id,
        status=Delivery.Status.PENDING,
        max_attempts=len(settings.ASSISTANCE_RETRY_SCHEDULE),
        next_attempt_at=now + settings.ASSISTANCE_PENDING_GRACE,
        created_at=now,
        updated_at=now,
    )
    delivery.save(force_insert=True)
    events.requested(delivery)
    return delivery, render(delivery)


def _replay(key: str, fingerprint: str) -> Submitted | None:
    stored = IdempotencyKey.objects.filter(key=key).first()
    if stored is None:
        return None
    if stored.created_at < timezone.now() - settings.ASSISTANCE_IDEMPOTENCY_TTL:
        IdempotencyKey.objects.filter(key=key, created_at=stored.created_at).delete()
        return None
    if stored.request_hash != fingerprint:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used for a request with another body in the last "
            f"{settings.ASSISTANCE_IDEMPOTENCY_TTL.total_seconds() / 3600:g} hours."
        )
    return Submitted(stored.delivery_id, stored.response, replay=True)


def delivery_retry(*, delivery_id: UUID) -> Delivery:
    """An operator's "retry this FAILED request": due now, with a fresh schedule.

    The attempts go on counting; ``max_attempts`` grows by the schedule's
    length, so it gets as many tries again. Called by the admin's action and
    the console.
    """
    with transaction.atomic():
        delivery = Delivery.objects.select_for_update().get(pk=delivery_id)
        if delivery.status != Delivery.Status.FAILED:
            raise DeliveryNotFailed(f"Request {delivery_id} is {delivery.status}, not FAILED.")
        now = timezone.now()
        delivery.status = Delivery.Status.QUEUED
        delivery.max_attempts = delivery.attempts + len(settings.ASSISTANCE_RETRY_SCHEDULE)
        delivery.next_attempt_at = now
        delivery.failed_at = None
        delivery.lease_token = None
        delivery.updated_at = now
        delivery.save()
        events.retry_scheduled(delivery, at=now, by_operator=True)
        publish_after_commit(delivery.id)
    log.info("assistance_retry_by_operator", request_id=str(delivery_id))
    return delivery
