"""Queue intake (SPEC Q-4 to Q-8): the inbox, dead letters, and partition leases.

* ``InboxEvent``: one row per applied event, written in the transaction of
  its effect. Its primary key is the event id, so a redelivery (a consumer
  killed between commit and ack, a producer resending hours later) finds the
  row and does nothing (Q-6). Refused events take no row, so a re-driven
  dead letter can still apply.
* ``DeadLetter``: an event that could not be parsed, that the rules refused,
  or that failed ``INTAKE_MAX_DELIVERIES`` times, with its raw body (Q-7).
* ``PartitionLease`` and ``IntakeConsumer``: who consumes which partition on
  brokers that cannot give a queue a single consumer themselves (Redis and
  the filesystem transport; RabbitMQ has single-active-consumer queues, SQS
  FIFO has message groups).
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

SOURCES = ("amqp", "sqs", "redis", "filesystem")


class InboxEvent(models.Model):
    # The envelope's correlation_id, or "TYPE:data.id" for Parley's events.
    event_id = models.CharField(max_length=300, primary_key=True)
    source = models.CharField(max_length=16)
    applied_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            # Serves the retention sweep: WHERE applied_at < %s.
            models.Index(fields=["applied_at"], name="inbox_applied_idx"),
        ]

    def __str__(self) -> str:
        return self.event_id


class DeadLetter(models.Model):
    class Code(models.TextChoices):
        INVALID_JSON = "invalid_json"
        UNKNOWN_TYPE = "unknown_type"
        INVALID_PAYLOAD = "invalid_payload"
        INVALID_SCORE = "invalid_score"
        GAVE_UP = "gave_up"

    id = models.BigAutoField(primary_key=True)
    source = models.CharField(max_length=16, choices=[(s, s) for s in SOURCES])
    # The broker queue (or partition) it was read from.
    queue = models.CharField(max_length=255, blank=True, default="")
    received_at = models.DateTimeField(default=timezone.now)
    reason = models.TextField()
    # One of Code, or the refusal's own W-3 code (conversation_closed, ...).
    code = models.CharField(max_length=64)
    # The raw body as text; bytes that are not UTF-8 are replaced, and the
    # original bytes are then kept in body_base64.
    body = models.TextField()
    body_base64 = models.TextField(null=True, blank=True)  # noqa: DJ001
    event_id = models.CharField(max_length=300, null=True, blank=True)  # noqa: DJ001
    deliveries = models.PositiveIntegerField(default=1)
    # Re-drives (admin, manage.py intake_redrive, the API): the last one's result.
    redrive_count = models.PositiveIntegerField(default=0)
    redriven_at = models.DateTimeField(null=True, blank=True)
    redrive_result = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001

    class Meta:
        indexes = [
            # Serves the listing, newest first: ORDER BY received_at DESC, id DESC.
            models.Index(fields=["-received_at", "-id"], name="deadletter_newest_idx"),
            # Serves ?code=: WHERE code = %s ORDER BY received_at DESC, id DESC.
            models.Index(fields=["code", "-received_at", "-id"], name="deadletter_code_idx"),
        ]

    def __str__(self) -> str:
        return f"dead letter {self.pk} ({self.code})"

    def raw_body(self) -> bytes:
        """The bytes as they arrived."""
        import base64

        if self.body_base64 is not None:
            return base64.b64decode(self.body_base64)
        return self.body.encode()


class PartitionLease(models.Model):
    """A partition consumed by one consumer at a time, for ``expires_at``.

    Claimed by a conditional UPDATE (free or expired), renewed while held,
    released on a clean stop; the due-work pattern's lease (STYLE).
    """

    # "<source>:<queue name>", e.g. "redis:parley.events.3".
    name = models.CharField(max_length=300, primary_key=True)
    owner = models.CharField(max_length=100, null=True, blank=True)  # noqa: DJ001
    expires_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(owner__isnull=True) | ~Q(owner=""), name="lease_owner_not_blank"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.owner or 'free'})"


class IntakeConsumer(models.Model):
    """A running consumer's heartbeat: the live ones share the partitions evenly."""

    owner = models.CharField(max_length=100, primary_key=True)
    source = models.CharField(max_length=16)
    seen_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.owner
