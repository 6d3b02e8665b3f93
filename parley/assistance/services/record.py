"""Recording an attempt and moving the delivery on (A-5, A-7): the engine's last step."""

from __future__ import annotations

import copy
import enum
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import structlog
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from parley.assistance import events, metrics, rules
from parley.assistance.channels import Outcome, Result
from parley.assistance.models import Attempt, Delivery
from parley.assistance.services._common import database_functions
from parley.outbox.models import OutboxEvent
from parley.outbox.services import OUTBOX_CHANNEL

log = structlog.get_logger(__name__)


class Step(enum.Enum):
    SENT = "sent"
    FAILED = "failed"
    RETRY = "retry"  # a retryable failure; due again later
    DEFERRED = "deferred"  # over the channel's rate limit; due again when it fits
    SKIPPED = "skipped"  # not due, leased by another runner, or already settled
    RECORDED = "recorded"  # an attempt of a runner that lost its lease: history only


@dataclass(frozen=True)
class AttemptReport:
    step: Step
    outcome: Outcome | None = None


def attempt_record(
    loaded: Delivery,
    token: UUID,
    outcome: Outcome,
    *,
    started: datetime,
    ended: datetime,
    kind: str | None,
) -> AttemptReport:
    """Record an attempt and move the delivery on, under the row's lock.

    * The attempt always goes into the history, numbered in order.
    * A delivered attempt makes the delivery SENT (A-5), even from a runner
      whose lease ran out: the channel has confirmed it.
    * Otherwise only the lease's holder decides what comes next: FAILED on a
      permanent error or when the attempts are used up, else QUEUED and due
      after the retry delay (A-7).
    * Each change writes its outbox event in the same transaction.

    On PostgreSQL the lease's holder records in one statement
    (:func:`attempts_record`); a runner that lost its lease, and SQLite, take
    the row's lock and decide in Python.
    """
    if database_functions():
        report = attempts_record([(loaded, outcome, started, ended)], token).get(loaded.pk)
        if report is not None:
            return report
    with transaction.atomic():
        delivery = Delivery.objects.select_for_update().get(pk=loaded.pk)
        delivery.channel = loaded.channel
        now = timezone.now()
        delivery.attempts += 1
        Attempt.objects.create(
            delivery=delivery,
            n=delivery.attempts,
            started_at=started,
            ended_at=ended,
            outcome=outcome.result.value,
            status_code=outcome.status_code,
            error=outcome.error,
        )
        delivery.updated_at = now
        if outcome.status_code is not None:
            delivery.last_status_code = outcome.status_code
        if outcome.result is not Result.DELIVERED:
            delivery.last_error = outcome.error
        step = _next_state(delivery, token, outcome, now)
        delivery.save()
        if step is Step.SENT:
            events.sent(delivery)
        elif step is Step.FAILED:
            events.failed(delivery)
        elif step is Step.RETRY:
            events.retry_scheduled(delivery, at=now)
    _observe(delivery, outcome, step, kind)
    return AttemptReport(step, outcome)


_RECORD = f"""
    WITH input AS (
        SELECT * FROM unnest(
            %(id)s::uuid[], %(status)s::text[], %(next_attempt_at)s::timestamptz[],
            %(sent_at)s::timestamptz[], %(failed_at)s::timestamptz[], %(delivered)s::boolean[],
            %(last_error)s::text[], %(status_code)s::integer[], %(started)s::timestamptz[],
            %(ended)s::timestamptz[], %(outcome)s::text[], %(error)s::text[], %(event)s::text[],
            %(subject)s::text[], %(data)s::jsonb[]
        ) AS i(id, status, next_attempt_at, sent_at, failed_at, delivered, last_error,
               status_code, started, ended, outcome, error, event, subject, data)
    ), updated AS (
        UPDATE {Delivery._meta.db_table} d SET
            status = i.status, attempts = d.attempts + 1, next_attempt_at = i.next_attempt_at,
            lease_token = NULL, sent_at = i.sent_at, failed_at = i.failed_at,
            last_error = CASE WHEN i.delivered THEN d.last_error ELSE i.last_error END,
            last_status_code = COALESCE(i.status_code, d.last_status_code), updated_at = %(now)s
        FROM input i
        WHERE d.id = i.id AND d.lease_token = %(token)s AND d.status IN ('PENDING', 'QUEUED')
        RETURNING d.id, d.attempts, d.tenant_id
    ), attempt AS (
        INSERT INTO {Attempt._meta.db_table}
            (delivery_id, n, started_at, ended_at, outcome, status_code, error)
        SELECT u.id, u.attempts, i.started, i.ended, i.outcome, i.status_code, i.error
        FROM updated u JOIN input i ON i.id = u.id
    ), event AS (
        INSERT INTO {OutboxEvent._meta.db_table} (type, occurred_at, tenant_id, subject, data)
        SELECT i.event, %(now)s, u.tenant_id, i.subject,
            i.data || jsonb_build_object('attempts', u.attempts)
        FROM updated u JOIN input i ON i.id = u.id
        WHERE i.event IS NOT NULL
    )
    SELECT u.id, u.attempts FROM updated u, (SELECT parley_ring(%(ring)s)) AS rang
"""  # noqa: S608  (table names from the models)

Item = tuple[Delivery, Outcome, datetime, datetime]
_RECORD_COLUMNS = [
    "id",
    "status",
    "next_attempt_at",
    "sent_at",
    "failed_at",
    "delivered",
    "last_error",
    "status_code",
    "started",
    "ended",
    "outcome",
    "error",
    "event",
    "subject",
    "data",
]


def attempts_record(items: list[Item], token: UUID) -> dict[Any, AttemptReport]:
    """PostgreSQL: the lease holder's records of a batch, in one statement run in autocommit.

    One commit for the whole batch instead of one per delivery. Each new
    state is decided from the row as loaded: while this runner holds the
    lease only it changes the row, and the UPDATE checks that it still does.
    A delivery missing from the answer lost its lease (the caller records it
    on the locked path).
    """
    now = timezone.now()
    columns: dict[str, list[Any]] = {name: [] for name in _RECORD_COLUMNS}
    steps: dict[Any, tuple[Delivery, Step, Outcome]] = {}
    for loaded, outcome, started, ended in items:
        delivery = copy.copy(loaded)
        delivery.attempts += 1
        if outcome.result is not Result.DELIVERED:
            delivery.last_error = outcome.error
        step = _next_state(delivery, token, outcome, now)
        event = {
            Step.SENT: events.SENT,
            Step.FAILED: events.FAILED,
            Step.RETRY: events.RETRY_SCHEDULED,
        }.get(step)
        if delivery.purpose != Delivery.Purpose.ASSISTANCE:
            event = None
        row = {
            "id": delivery.pk,
            "status": delivery.status,
            "next_attempt_at": delivery.next_attempt_at,
            "sent_at": delivery.sent_at,
            "failed_at": delivery.failed_at,
            "delivered": outcome.result is Result.DELIVERED,
            "last_error": delivery.last_error,
            "status_code": outcome.status_code,
            "started": started,
            "ended": ended,
            "outcome": outcome.result.value,
            "error": outcome.error,
            "event": event,
            "subject": str(delivery.conversation_id or delivery.pk),
            "data": json.dumps(events.event_data(delivery, event)) if event else None,
        }
        for name, value in row.items():
            columns[name].append(value)
        steps[delivery.pk] = (delivery, step, outcome)
    with connection.cursor() as cursor:
        cursor.execute(_RECORD, {**columns, "now": now, "token": token, "ring": OUTBOX_CHANNEL})
        recorded = cursor.fetchall()
    reports = {}
    for pk, attempts in recorded:
        delivery, step, outcome = steps[pk]
        delivery.attempts = attempts
        _observe(delivery, outcome, step, None)
        reports[pk] = AttemptReport(step, outcome)
    return reports


def _next_state(delivery: Delivery, token: UUID, outcome: Outcome, now: datetime) -> Step:
    if delivery.status not in Delivery.LIVE:
        return Step.RECORDED  # settled meanwhile by another runner
    if outcome.result is Result.DELIVERED:
        delivery.status = Delivery.Status.SENT
        delivery.sent_at = now
        delivery.next_attempt_at = None
        delivery.lease_token = None
        return Step.SENT
    if delivery.lease_token != token:
        return Step.RECORDED  # the lease passed to another runner, which decides
    delay = None
    if outcome.result is Result.RETRYABLE:
        delay = rules.retry_delay(
            attempts=delivery.attempts,
            max_attempts=delivery.max_attempts,
            schedule=settings.ASSISTANCE_RETRY_SCHEDULE,
            retry_after=outcome.retry_after,
            jitter=settings.ASSISTANCE_RETRY_JITTER,
        )
        if delay is None:
            delivery.last_error = f"{outcome.error} (attempts exhausted)"
    delivery.lease_token = None
    if delay is None:
        delivery.status = Delivery.Status.FAILED
        delivery.failed_at = now
        delivery.next_attempt_at = None
        return Step.FAILED
    delivery.status = Delivery.Status.QUEUED
    delivery.next_attempt_at = now + timedelta(seconds=delay)
    return Step.RETRY


def _observe(delivery: Delivery, outcome: Outcome, step: Step, kind: str | None) -> None:
    if kind is None:  # the channel's; a pushed reply goes through the webhook kind
        kind = delivery.channel.kind if delivery.channel is not None else "webhook"
    metrics.ATTEMPTS.labels(
        purpose=delivery.purpose, kind=kind or "none", outcome=outcome.result.value
    ).inc()
    if step in (Step.SENT, Step.FAILED):
        metrics.SETTLED.labels(purpose=delivery.purpose, status=delivery.status).inc()
    if step is Step.SENT and delivery.sent_at is not None:
        metrics.TIME_TO_SENT.observe((delivery.sent_at - delivery.created_at).total_seconds())
    log.info(
        "assistance_attempt",
        request_id=str(delivery.pk),
        purpose=delivery.purpose,
        attempt=delivery.attempts,
        outcome=outcome.result.value,
        status_code=outcome.status_code,
        error=outcome.error,
        step=step.value,
        next_attempt_at=delivery.next_attempt_at.isoformat() if delivery.next_attempt_at else None,
    )
