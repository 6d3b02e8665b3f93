"""Applying queued events exactly once, and keeping what cannot be applied (Q-6, Q-7).

``batch_apply`` runs several events in ONE transaction, each in a savepoint:
per event, (1) claim its inbox row (``INSERT ... ON CONFLICT DO NOTHING``):
no row inserted means it was applied before, a duplicate; (2) run the same
service as ``POST /webhook/``; (3) a refusal rolls back to the savepoint,
inbox row included, and stores a dead letter instead. The caller
acknowledges the messages only after the commit, so a crash before it
applies nothing and the broker redelivers all of them; a crash after it
(before the ack) makes every redelivery a duplicate.

A failure that is not a refusal (the database went away, a bug) escapes: the
whole transaction rolls back and the consumer retries (``parley.intake.consumer``).
"""

from __future__ import annotations

import base64
import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog
from django.db import DataError, OperationalError, connection, transaction
from django.utils import timezone
from structlog.contextvars import bound_contextvars

from parley.core import sql
from parley.core.errors import ParleyError
from parley.intake.models import DeadLetter, InboxEvent
from parley.outbox.services import event_append
from parley.webhooks import dispatch
from parley.webhooks.schemas import AnyEvent, parse_event

log = structlog.get_logger(__name__)

DEAD_LETTERED = "intake.dead_lettered"
_INBOX_TABLE = InboxEvent._meta.db_table
_CLAIM = f"""
    INSERT INTO {_INBOX_TABLE} (event_id, source, applied_at) VALUES (%s, %s, %s)
    ON CONFLICT (event_id) DO NOTHING
"""  # noqa: S608  (table name from the model)


class Outcome(enum.StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    DEAD_LETTERED = "dead_lettered"


@dataclass
class Incoming:
    """One message as read from a broker, parsed once."""

    body: bytes
    source: str
    queue: str = ""
    deliveries: int = 1
    event: AnyEvent | None = None
    # The refusal of a body that did not parse.
    error: ParleyError | None = None
    event_id: str | None = None
    key: str | None = None
    # Filled by batch_apply.
    outcome: Outcome | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def incoming(body: bytes | str, *, source: str, queue: str = "", deliveries: int = 1) -> Incoming:
    """Parse a raw body into an Incoming (never raises: a bad body carries its error)."""
    raw = body.encode() if isinstance(body, str) else bytes(body)
    item = Incoming(body=raw, source=source, queue=queue, deliveries=deliveries)
    try:
        item.event = parse_event(raw)
    except ParleyError as exc:
        item.error = exc
        return item
    item.event_id = dispatch.event_id(item.event)
    item.key = dispatch.event_key(item.event)
    return item


def intake_code(exc: ParleyError) -> str:
    """A refusal's dead-letter code: ``invalid_json``, ``unknown_type``, or its W-3 code."""
    return str(getattr(exc, "intake_code", exc.code))


# A batch that mixes conversations waits at most this long for a row lock
# (PostgreSQL's lock_timeout): one conversation held up by a lock must not
# hold up the others of its batch.
SHARED_BATCH_LOCK_TIMEOUT_MS = 200


class _Refused(Exception):
    """An event of an optimistic batch was refused: the batch is applied again, carefully."""


class Contended(Exception):
    """A batch of several conversations waited too long for a lock; nothing was applied."""


def batch_apply(items: Sequence[Incoming], *, shared: bool = False) -> None:
    """Apply ``items`` in order, in one transaction; set each item's ``outcome``.

    Optimistic first: claim every inbox row in one statement and apply the
    events without a savepoint each, about half the round trips. Should one
    be refused (rare), that transaction rolls back whole and the batch runs
    again with a savepoint per event, so that only the refused ones become
    dead letters. Either way one transaction commits.

    ``shared``: the batch holds several conversations. On PostgreSQL it then
    waits at most ``SHARED_BATCH_LOCK_TIMEOUT_MS`` for any lock and raises
    :class:`Contended` (all rolled back) past it, so that the caller can
    apply each conversation on its own.
    """
    try:
        if all(item.event is not None for item in items):
            try:
                with transaction.atomic():
                    _limit_lock_waits(shared)
                    _apply_optimistic(items)
                return
            except _Refused:
                for item in items:
                    item.outcome, item.detail = None, {}
        with transaction.atomic():
            _limit_lock_waits(shared)
            for item in items:
                _apply_one(item)
    except OperationalError as exc:
        if shared and getattr(exc.__cause__, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
            raise Contended(str(exc)) from exc
        raise


_LOCK_NOT_AVAILABLE = "55P03"


def _limit_lock_waits(shared: bool) -> None:
    if shared and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = {SHARED_BATCH_LOCK_TIMEOUT_MS}")


def _apply_optimistic(items: Sequence[Incoming]) -> None:
    claimed = _inbox_claim_all(items)
    for item in items:
        assert item.event is not None
        assert item.event_id is not None
        if item.event_id not in claimed:
            item.outcome = Outcome.DUPLICATE
            continue
        claimed.discard(item.event_id)  # a second copy in the same batch is a duplicate
        with bound_contextvars(event_id=item.event_id, source=item.source):
            try:
                applied = dispatch.event_apply(item.event)
            except (ParleyError, DataError) as exc:
                raise _Refused from exc
        item.outcome = Outcome.APPLIED
        item.detail = {"result": applied.result, **applied.body}


def _inbox_claim_all(items: Sequence[Incoming]) -> set[str]:
    """Insert every item's inbox row in one statement; the event ids that were new."""
    now = timezone.now()
    field = lambda name: sql.field(InboxEvent, name)  # noqa: E731
    params: list[sql.Param] = []
    for item in items:
        params += [
            (field("event_id"), item.event_id),
            (field("source"), item.source),
            (field("applied_at"), now),
        ]
    rows = ", ".join(["(%s, %s, %s)"] * len(items))
    statement = (
        f"INSERT INTO {_INBOX_TABLE} (event_id, source, applied_at) VALUES {rows} "  # noqa: S608
        "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, sql.adapt(params))
        return {row[0] for row in cursor.fetchall()}


def _apply_one(item: Incoming) -> None:
    with bound_contextvars(event_id=item.event_id, source=item.source):
        if item.event is None:
            assert item.error is not None
            _dead_letter(item, code=intake_code(item.error), reason=_reason(item.error))
            return
        try:
            with transaction.atomic():  # a savepoint: a refusal undoes only this event
                if not _inbox_claim(item.event_id or "", item.source):
                    item.outcome = Outcome.DUPLICATE
                    return
                applied = dispatch.event_apply(item.event)
        except ParleyError as exc:
            _dead_letter(item, code=intake_code(exc), reason=_reason(exc))
            return
        except DataError as exc:
            # A value the database cannot hold: permanent for this body.
            _dead_letter(item, code="invalid_payload", reason=str(exc).strip())
            return
        item.outcome = Outcome.APPLIED
        item.detail = {"result": applied.result, **applied.body}


def _inbox_claim(event_id: str, source: str) -> bool:
    field = lambda name: sql.field(InboxEvent, name)  # noqa: E731
    claimed = sql.execute(
        _CLAIM,
        [
            (field("event_id"), event_id),
            (field("source"), source),
            (field("applied_at"), timezone.now()),
        ],
    )
    return claimed > 0


def _reason(exc: ParleyError) -> str:
    detail = exc.detail
    if exc.errors:
        fields = "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in exc.errors.items())
        detail = f"{detail} {fields}"
    return detail


def _dead_letter(item: Incoming, *, code: str, reason: str) -> None:
    letter = dead_letter_store(
        body=item.body,
        source=item.source,
        queue=item.queue,
        code=code,
        reason=reason,
        event_id=item.event_id,
        deliveries=item.deliveries,
    )
    item.outcome = Outcome.DEAD_LETTERED
    item.detail = {"dead_letter_id": letter.pk, "code": code}


def dead_letter_store(
    *,
    body: bytes,
    source: str,
    queue: str,
    code: str,
    reason: str,
    event_id: str | None = None,
    deliveries: int = 1,
) -> DeadLetter:
    """Keep an event that will not apply, with its raw body; and tell the console (outbox)."""
    try:
        text, original = body.decode(), None
    except UnicodeDecodeError:
        text, original = body.decode(errors="replace"), base64.b64encode(body).decode()
    # PostgreSQL text cannot hold NUL: such a body is kept whole in body_base64.
    if "\x00" in text:
        text, original = text.replace("\x00", "\ufffd"), base64.b64encode(body).decode()
    now = timezone.now()
    with transaction.atomic():
        letter = DeadLetter.objects.create(
            source=source,
            queue=queue,
            received_at=now,
            reason=reason,
            code=code,
            body=text,
            body_base64=original,
            event_id=(event_id or "")[:300] or None,
            deliveries=deliveries,
        )
        event_append(
            type=DEAD_LETTERED,
            occurred_at=now,
            tenant_id=None,
            subject=str(letter.pk),
            data={
                "dead_letter_id": letter.pk,
                "source": source,
                "queue": queue,
                "code": code,
                "reason": reason[:500],
                "event_id": letter.event_id,
            },
        )
    log.warning("intake_dead_lettered", code=code, reason=reason[:500], dead_letter_id=letter.pk)
    return letter


@dataclass(frozen=True)
class Redriven:
    dead_letter: DeadLetter
    outcome: Outcome
    # For a refusal: the code it was refused with this time.
    code: str | None = None


def dead_letter_redrive(*, dead_letter_id: int) -> Redriven:
    """Apply a dead letter's body again, now (admin, ``manage.py intake_redrive``, the API).

    The event goes through the inbox like any delivery: it applies once, and a
    dead letter whose event was applied since (a producer resent it) is a
    duplicate. Refused again, it stays a dead letter with the new reason; no
    second dead letter is made. The letter row is locked, so two operators
    re-driving it at once apply it once.
    """
    with transaction.atomic():
        letter = DeadLetter.objects.select_for_update().get(pk=dead_letter_id)
        item = incoming(letter.raw_body(), source=letter.source, queue=letter.queue)
        outcome, code = _redrive_apply(item)
        letter.redrive_count += 1
        letter.redriven_at = timezone.now()
        letter.redrive_result = outcome.value if code is None else code
        if code is not None and item.error is None:
            letter.reason = str(item.detail.get("reason", letter.reason))
        letter.save(update_fields=["redrive_count", "redriven_at", "redrive_result", "reason"])
    log.info("intake_redriven", dead_letter_id=dead_letter_id, outcome=outcome.value, code=code)
    return Redriven(letter, outcome, code)


def _redrive_apply(item: Incoming) -> tuple[Outcome, str | None]:
    if item.event is None:
        assert item.error is not None
        return Outcome.DEAD_LETTERED, intake_code(item.error)
    with bound_contextvars(event_id=item.event_id, source=item.source):
        try:
            with transaction.atomic():
                if not _inbox_claim(item.event_id or "", item.source):
                    return Outcome.DUPLICATE, None
                dispatch.event_apply(item.event)
        except ParleyError as exc:
            item.detail = {"reason": _reason(exc)}
            return Outcome.DEAD_LETTERED, intake_code(exc)
    return Outcome.APPLIED, None


def inbox_prune(*, older_than_days: float) -> int:
    """Forget applied events older than the retention: a later resend would apply again."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    deleted, _ = InboxEvent.objects.filter(applied_at__lt=cutoff).delete()
    return deleted
