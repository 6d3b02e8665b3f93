"""The analytics export's batches (T-4).

The exporter reads the outbox with a durable cursor (``OutboxCursor`` named
``analytics``). A batch is the span of outbox positions after the cursor up
to a fixed end, recorded here BEFORE any file is written: a run that dies
between writing and marking leaves the batch PENDING, and the next run
writes the same span again, so the same names with the same bytes, then
marks it. The positions it covers are final when it is fixed (every event
in it belongs to a finished transaction; ``parley.outbox.models``), so
re-reading the span always gives the same events.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone


class ExportBatch(models.Model):
    class Status(models.TextChoices):
        PENDING = "PENDING"  # fixed; its files may be written, the cursor not moved
        DONE = "DONE"  # files written, cursor moved past it

    # The outbox positions (txid, id): after the first, up to the second.
    after_txid = models.BigIntegerField()
    after_id = models.BigIntegerField()
    upto_txid = models.BigIntegerField()
    upto_id = models.BigIntegerField()
    events = models.PositiveIntegerField(help_text="Outbox events in the span.")
    exported = models.PositiveIntegerField(
        default=0, help_text="Of them, the T-4 events written as CloudEvents."
    )
    files = models.JSONField(default=list, blank=True, help_text="Object names written.")
    status = models.CharField(max_length=7, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    exported_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["PENDING", "DONE"]), name="export_batch_status_valid"
            ),
            # Two exporters that read the same cursor cannot both fix a batch from it.
            models.UniqueConstraint(
                fields=["after_txid", "after_id"], name="export_batch_one_per_start"
            ),
            models.UniqueConstraint(
                fields=["status"],
                condition=Q(status="PENDING"),
                name="export_batch_one_pending",
            ),
        ]
        indexes = [
            # Serves the pruning of old batches: WHERE status = 'DONE' AND created_at < %s.
            models.Index(fields=["created_at"], name="export_batch_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.after} to {self.upto} ({self.status})"

    @property
    def after(self) -> tuple[int, int]:
        return (self.after_txid, self.after_id)

    @property
    def upto(self) -> tuple[int, int]:
        return (self.upto_txid, self.upto_id)
