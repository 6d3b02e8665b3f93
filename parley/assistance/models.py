"""Channels, topics, and the deliveries the engine owes (SPEC section 9).

* A ``Channel`` is where notices go: a kind from the registry
  (``channels/``) and its config, encrypted at rest (``crypto``).
* A ``Topic`` is data: its slug names what a bot asks for, and it maps to
  one channel (A-3).
* A ``Delivery`` is one notice the engine owes: an assistance request (A-1)
  or a pushed reply (A-11). Its id is the key every attempt carries (A-6).
  What is due lives in ``next_attempt_at`` (indexed), like a group's
  ``reply_due_at``: the sweep finds it after any crash (``parley.core.duework``).
* An ``Attempt`` is one call to the channel and what it answered (A-2).
* An ``IdempotencyKey`` remembers the first answer to a POST for 24 h (A-8).
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

from parley.assistance.crypto import EncryptedConfigField


class Channel(models.Model):
    # Unique, and what a topic names in the API.
    name = models.CharField(max_length=100, unique=True)
    # A registered kind (channels.KINDS). Not a choices field: a new kind is a
    # new module only, never a migration.
    kind = models.CharField(max_length=32)
    # Write-only everywhere; {} means "read the environment's defaults".
    config = EncryptedConfigField(blank=True, default=dict)
    active = models.BooleanField(default=True)
    # The shared rate limit: None takes the kind's default; 0 is no limit.
    rate_per_second = models.FloatField(null=True, blank=True)
    burst = models.PositiveIntegerField(null=True, blank=True)
    # The rate limiter's state: the generic cell rate algorithm's theoretical
    # arrival time, moved by a compare-and-set UPDATE (ratelimit.py).
    rate_tat = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class Topic(models.Model):
    # Stored trimmed and lower-case; a request's topic is matched the same way.
    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="topics")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Delivery(models.Model):
    """A notice owed to a channel, with its state (A-5).

    PENDING  stored; no runner has taken it yet (the task published after
             commit normally does within milliseconds).
    QUEUED   waiting for an attempt or a retry, or being attempted: then
             ``next_attempt_at`` is the end of the runner's lease, when the
             sweep would take it again if the runner died.
    SENT     the channel confirmed it (2xx, SMTP 250).
    FAILED   a permanent error, or the attempts ran out.
    """

    class Purpose(models.TextChoices):
        ASSISTANCE = "assistance"  # POST /assistance-requests/ (A-1)
        REPLY = "reply"  # a reply pushed to REPLY_WEBHOOK_URL

    class Status(models.TextChoices):
        PENDING = "PENDING"
        QUEUED = "QUEUED"
        SENT = "SENT"
        FAILED = "FAILED"

    LIVE = ("PENDING", "QUEUED")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    purpose = models.CharField(max_length=10, choices=Purpose.choices)
    # Assistance: the topic as matched, and the channel it mapped to then.
    topic = models.CharField(max_length=100, blank=True, default="")
    channel = models.ForeignKey(
        Channel, on_delete=models.PROTECT, null=True, blank=True, related_name="deliveries"
    )
    description = models.TextField(blank=True, default="")
    conversation_id = models.UUIDField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    tenant_id = models.UUIDField(null=True, blank=True)
    status = models.CharField(max_length=7, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField()
    # The latest failure, redacted; kept after a later success.
    last_error = models.TextField(null=True, blank=True)  # noqa: DJ001
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # The current runner's lease (parley.core.duework); null when none runs.
    lease_token = models.UUIDField(null=True, blank=True, editable=False)
    sent_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "deliveries"
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["PENDING", "QUEUED", "SENT", "FAILED"]),
                name="delivery_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(purpose__in=["assistance", "reply"]), name="delivery_purpose_valid"
            ),
            # Whatever is still owed is findable by the sweep; a settled one is not.
            models.CheckConstraint(
                condition=Q(status__in=["PENDING", "QUEUED"], next_attempt_at__isnull=False)
                | Q(status__in=["SENT", "FAILED"], next_attempt_at__isnull=True),
                name="delivery_due_unless_settled",
            ),
            models.CheckConstraint(
                condition=Q(purpose="reply") | Q(channel__isnull=False),
                name="delivery_assistance_has_channel",
            ),
        ]
        indexes = [
            # Serves the sweep (parley.core.duework.claim_due): WHERE status IN
            # ('PENDING','QUEUED') AND next_attempt_at <= %s ORDER BY next_attempt_at LIMIT n.
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status__in=["PENDING", "QUEUED"]),
                name="delivery_due_idx",
            ),
            # Serves the admin's and the console's listings, newest first.
            models.Index(fields=["-created_at"], name="delivery_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.purpose} {self.id} ({self.status})"


class Attempt(models.Model):
    """One call to the channel (A-2). Written when the channel answered, or failed to."""

    class Outcome(models.TextChoices):
        DELIVERED = "delivered"
        RETRYABLE = "retryable"
        PERMANENT = "permanent"

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="history")
    n = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField()
    outcome = models.CharField(max_length=9, choices=Outcome.choices)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(null=True, blank=True)  # noqa: DJ001

    class Meta:
        ordering = ["delivery", "n"]
        constraints = [
            models.UniqueConstraint(fields=["delivery", "n"], name="attempt_unique_n"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.n} of {self.delivery_id}: {self.outcome}"


class IdempotencyKey(models.Model):
    """The first answer to a POST that carried ``Idempotency-Key`` (A-8), kept 24 h."""

    key = models.CharField(max_length=255, primary_key=True)
    request_hash = models.CharField(max_length=64)
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="+")
    response = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            # Serves the prune: WHERE created_at < %s.
            models.Index(fields=["created_at"], name="idempotency_created_idx"),
        ]

    def __str__(self) -> str:
        return self.key
