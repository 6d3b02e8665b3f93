"""Conversations, their messages, the groups that get replies, and the orphan buffer.

The invariants of SPEC sections 2 and 4 are held by the database, not by luck:

* a message id is stored once (primary key);
* a conversation has at most one OPEN group (partial unique constraint);
* a group has at most one reply (``Message.reply_to`` is one-to-one);
* a group that still owes a reply carries ``reply_due_at``, so the sweeper
  finds it after any crash; a replied or failed group carries none (check
  constraint);
* a (tenant, channel, contact) key has at most one OPEN conversation (Q-2);
* a CLOSED conversation records why it closed, an OPEN one has no reason.

Every write to a conversation, its groups or its messages happens while the
conversation row is locked (the ``services`` package), so two processes never act on
the same group at once.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone


class Conversation(models.Model):
    class Status(models.TextChoices):
        OPEN = "OPEN"
        CLOSED = "CLOSED"

    class CloseReason(models.TextChoices):
        MANUAL = "manual"  # CLOSE_CONVERSATION, or an operator
        IDLE = "idle"  # the tenant's idle_close_after (T-1)
        SCHEDULED = "scheduled"  # the tenant's daily_close_at (T-1)

    id = models.UUIDField(primary_key=True)
    status = models.CharField(max_length=6, choices=Status.choices, default=Status.OPEN)
    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.PROTECT, related_name="conversations"
    )
    # The seed envelope's key, with the tenant; null for seed 000
    # conversations. Text columns here are null, not "", where the API shows
    # null and where "no value" must stay out of a constraint.
    channel_uuid = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    contact_urn = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    # Server times. updated_at moves on every new message and on close.
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    close_reason = models.CharField(  # noqa: DJ001
        max_length=9, choices=CloseReason.choices, null=True, blank=True
    )
    # The latest survey scores, null until one is recorded.
    csat = models.PositiveSmallIntegerField(null=True, blank=True)
    nps = models.PositiveSmallIntegerField(null=True, blank=True)
    # The transcript in the object store (T-5), once written.
    archived_at = models.DateTimeField(null=True, blank=True)
    transcript_sha256 = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["OPEN", "CLOSED"]), name="conversation_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(status="OPEN", close_reason__isnull=True)
                | Q(status="CLOSED", close_reason__in=["manual", "idle", "scheduled"]),
                name="conversation_close_reason_valid",
            ),
            models.CheckConstraint(
                condition=Q(csat__isnull=True) | Q(csat__gte=1, csat__lte=5),
                name="conversation_csat_range",
            ),
            models.CheckConstraint(
                condition=Q(nps__isnull=True) | Q(nps__lte=10), name="conversation_nps_range"
            ),
            # the seed envelope's events find "the OPEN conversation" of a key;
            # under concurrent events the second insert is a unique violation.
            models.UniqueConstraint(
                fields=["tenant", "channel_uuid", "contact_urn"],
                condition=Q(status="OPEN", channel_uuid__isnull=False),
                name="conversation_one_open_per_contact",
            ),
        ]
        indexes = [
            # Serves the admin's default listing, newest activity first.
            models.Index(fields=["-updated_at"], name="conversation_updated_idx"),
            # Serves the lifecycle tick (T-1), per tenant with a setting: the idle
            # sweep's WHERE status = 'OPEN' AND tenant_id = %s AND updated_at <= %s
            # and a daily close's WHERE status = 'OPEN' AND tenant_id = %s
            # AND created_at <= %s. Only OPEN conversations are in it.
            models.Index(
                fields=["tenant", "updated_at"],
                condition=Q(status="OPEN"),
                name="conversation_open_activity_idx",
            ),
            # Serves the archive sweep (T-5): WHERE status = 'CLOSED' AND
            # archived_at IS NULL ORDER BY closed_at. Holds only what awaits it.
            models.Index(
                fields=["closed_at"],
                condition=Q(status="CLOSED", archived_at__isnull=True),
                name="conversation_unarchived_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"


class MessageGroup(models.Model):
    """A burst of INBOUND messages that gets exactly one reply (G-1 to G-3).

    OPEN     collecting messages; ``reply_due_at`` is when it closes (the last
             arrival plus the window, or the G-6 cap).
    CLOSED   no longer collecting, reply not yet recorded; ``reply_due_at`` is
             when a runner may (next) try: now, or the end of the current
             runner's lease.
    REPLIED  its OUTBOUND message exists; ``reply_due_at`` is null.
    FAILED   the writer failed ``REPLY_MAX_ATTEMPTS`` times (G-8); ``last_error``
             says why and ``reply_due_at`` is null until an operator retries it.
    """

    class Status(models.TextChoices):
        OPEN = "OPEN"
        CLOSED = "CLOSED"
        REPLIED = "REPLIED"
        FAILED = "FAILED"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="groups")
    status = models.CharField(max_length=7, choices=Status.choices, default=Status.OPEN)
    opened_at = models.DateTimeField(help_text="Server arrival of the first message.")
    last_message_at = models.DateTimeField(help_text="Server arrival of the latest message.")
    reply_due_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    replied_at = models.DateTimeField(null=True, blank=True)
    reply_attempts = models.PositiveIntegerField(default=0)
    # The writer's latest failure (G-8), kept after a later success too.
    last_error = models.TextField(null=True, blank=True)  # noqa: DJ001
    failed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["OPEN", "CLOSED", "REPLIED", "FAILED"]),
                name="group_status_valid",
            ),
            models.UniqueConstraint(
                fields=["conversation"],
                condition=Q(status="OPEN"),
                name="group_one_open_per_conversation",
            ),
            # Anything that still owes a reply is findable by the sweeper.
            models.CheckConstraint(
                condition=Q(status__in=["REPLIED", "FAILED"], reply_due_at__isnull=True)
                | (Q(status__in=["OPEN", "CLOSED"]) & Q(reply_due_at__isnull=False)),
                name="group_due_unless_settled",
            ),
        ]
        indexes = [
            # Serves the sweeper: WHERE status IN ('OPEN','CLOSED')
            # AND reply_due_at <= %s ORDER BY reply_due_at LIMIT n.
            models.Index(
                fields=["reply_due_at"],
                condition=Q(status__in=["OPEN", "CLOSED"]),
                name="group_reply_due_idx",
            ),
            # Serves the FAILED groups (G-8): the admin's and the console's
            # lists, WHERE status = 'FAILED' ORDER BY failed_at DESC, and
            # /metrics' count of them.
            models.Index(
                fields=["-failed_at"],
                condition=Q(status="FAILED"),
                name="group_failed_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"group {self.pk} of {self.conversation_id} ({self.status})"


class Message(models.Model):
    class Type(models.TextChoices):
        INBOUND = "INBOUND"
        OUTBOUND = "OUTBOUND"

    id = models.UUIDField(primary_key=True)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    type = models.CharField(max_length=8, choices=Type.choices)
    content = models.TextField()
    # The event's own timestamp (W-7); for a reply, the time it was written.
    timestamp = models.DateTimeField()
    # The id the producer gave when it was not a UUID; ``id`` is then
    # uuid5(tenant, external_id), so a redelivery maps to the same row.
    external_id = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    # Server arrival time: every window runs on this, never on ``timestamp``.
    received_at = models.DateTimeField(default=timezone.now)
    # INBOUND: the group it belongs to.
    group = models.ForeignKey(
        MessageGroup,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="messages",
    )
    # OUTBOUND: the group it answers. One-to-one, so a second reply to the same
    # group is a unique violation (G-3). Null for an OUTBOUND message written
    # by someone else (the seed's message.sent, Q-2): never a reply.
    reply_to = models.OneToOneField(
        MessageGroup,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="reply",
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(type="INBOUND", group__isnull=False, reply_to__isnull=True)
                | Q(type="OUTBOUND", group__isnull=True),
                name="message_type_links_valid",
            ),
        ]
        indexes = [
            # Serves the read: a conversation's messages in display order.
            models.Index(
                fields=["conversation", "timestamp", "received_at"],
                name="message_conversation_order_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.id}"


class BufferedMessage(models.Model):
    """A NEW_MESSAGE whose conversation did not exist yet (SPEC section 2).

    It waits up to the orphan tolerance from its arrival. The row is kept after
    adoption or expiry, for audit and so that a re-delivered expired id is
    answered ``buffer_expired`` (B-3).
    """

    class Status(models.TextChoices):
        BUFFERED = "BUFFERED"
        ADOPTED = "ADOPTED"
        EXPIRED = "EXPIRED"

    id = models.UUIDField(primary_key=True)
    # Not a foreign key: the conversation does not exist when the row is written.
    conversation_id = models.UUIDField()
    content = models.TextField()
    timestamp = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.BUFFERED)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["BUFFERED", "ADOPTED", "EXPIRED"]),
                name="buffered_status_valid",
            ),
        ]
        indexes = [
            # Serves adoption: WHERE conversation_id = %s AND status = 'BUFFERED'.
            models.Index(
                fields=["conversation_id"],
                condition=Q(status="BUFFERED"),
                name="buffered_waiting_conv_idx",
            ),
            # Serves the sweeper's expiry: WHERE status = 'BUFFERED' AND received_at < %s.
            models.Index(
                fields=["received_at"],
                condition=Q(status="BUFFERED"),
                name="buffered_waiting_age_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"buffered {self.id} ({self.status})"
