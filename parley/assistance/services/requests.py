"""A request is stored, published after commit, and (once FAILED) retried by an operator."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import structlog
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from parley.assistance import events
from parley.assistance.errors import DeliveryNotFailed, IdempotencyKeyReused, UnknownTopic
from parley.assistance.models import Channel, Delivery, IdempotencyKey, Topic
from parley.assistance.services._common import database_functions, kick_after_commit
from parley.conversations.models import Conversation
from parley.outbox.models import OutboxEvent
from parley.outbox.services import OUTBOX_CHANNEL

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
       Without a key, on PostgreSQL, one statement in autocommit does the
       same (:func:`_store_in_one_statement`).
    4. After commit, the delivery task is published, unless one is on its
       way already (``kick_after_commit``): the fast path.
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
    if idempotency_key is None and database_functions():
        delivery = _store_in_one_statement(slug, description, conversation_id, metadata)
        kick_after_commit()  # autocommit: at once
        return Submitted(delivery.id, render(delivery), replay=False)
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
            kick_after_commit()
    except IntegrityError:
        earlier = _replay(idempotency_key, fingerprint) if idempotency_key is not None else None
        if earlier is None:
            raise
        return earlier
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


_DELIVERY = Delivery._meta.db_table
_SUBMIT = f"""
    WITH route AS (
        SELECT t.channel_id, c.kind, c.name
        FROM {Topic._meta.db_table} t JOIN {Channel._meta.db_table} c ON c.id = t.channel_id
        WHERE t.slug = %(slug)s AND t.active AND c.active
    ), owner AS (
        SELECT COALESCE(
            (SELECT tenant_id FROM {Conversation._meta.db_table} WHERE id = %(conversation_id)s),
            %(default_tenant)s
        ) AS tenant_id
    ), stored AS (
        INSERT INTO {_DELIVERY} (
            id, purpose, topic, channel_id, description, conversation_id, metadata, tenant_id,
            status, attempts, max_attempts, next_attempt_at, created_at, updated_at
        )
        SELECT %(id)s, 'assistance', %(slug)s, route.channel_id, %(description)s,
            %(conversation_id)s, %(metadata)s::jsonb, owner.tenant_id, 'PENDING', 0,
            %(max_attempts)s, %(due)s, %(now)s, %(now)s
        FROM route, owner
        RETURNING tenant_id
    ), event AS (
        INSERT INTO {OutboxEvent._meta.db_table} (type, occurred_at, tenant_id, subject, data)
        SELECT %(event)s, %(now)s, stored.tenant_id, %(subject)s, jsonb_build_object(
            'request_id', %(id)s::text, 'topic', %(slug)s, 'channel_kind', route.kind,
            'channel_name', route.name, 'conversation_id', %(conversation_text)s::text,
            'attempts', 0
        )
        FROM stored, route
    )
    SELECT route.channel_id, route.kind, route.name, stored.tenant_id, parley_ring(%(ring)s)
    FROM stored, route
"""  # noqa: S608  (table names from the models)


def _store_in_one_statement(
    slug: str, description: str, conversation_id: UUID | None, metadata: dict[str, Any]
) -> Delivery:
    """PostgreSQL: what :func:`_store` does, in one statement run in autocommit.

    One round trip instead of five (BEGIN, the topic, the insert, the event,
    COMMIT); a single statement is atomic on its own. Requests with an
    ``Idempotency-Key`` take the transaction of :func:`request_submit`.
    """
    now = timezone.now()
    delivery_id = uuid4()
    max_attempts = len(settings.ASSISTANCE_RETRY_SCHEDULE)
    due = now + settings.ASSISTANCE_PENDING_GRACE
    params: dict[str, Any] = {
        "slug": slug,
        "conversation_id": conversation_id,
        "conversation_text": str(conversation_id) if conversation_id else None,
        "default_tenant": settings.DEFAULT_TENANT_ID,
        "id": delivery_id,
        "description": description,
        "metadata": json.dumps(metadata),
        "max_attempts": max_attempts,
        "due": due,
        "now": now,
        "event": events.REQUESTED,
        "subject": str(conversation_id or delivery_id),
        "ring": OUTBOX_CHANNEL,
    }
    with connection.cursor() as cursor:
        cursor.execute(_SUBMIT, params)
        row = cursor.fetchone()
    if row is None:
        raise UnknownTopic(f"No active topic {slug!r}.")
    channel_id, kind, name, tenant_id = row[:4]
    return Delivery(
        id=delivery_id,
        purpose=Delivery.Purpose.ASSISTANCE,
        topic=slug,
        channel=Channel(id=channel_id, kind=kind, name=name),
        description=description,
        conversation_id=conversation_id,
        metadata=metadata,
        tenant_id=tenant_id,
        status=Delivery.Status.PENDING,
        max_attempts=max_attempts,
        next_attempt_at=due,
        created_at=now,
        updated_at=now,
    )


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
        kick_after_commit()
    log.info("assistance_retry_by_operator", request_id=str(delivery_id))
    return delivery
