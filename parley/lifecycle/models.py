"""Daily closes (T-1, T-2): one row per tenant and local date, planned, run, done.

A row is due work in the house pattern (STYLE, "Shared mechanisms"): the
deadline column ``due_at`` with a partial index, a claim by conditional
``UPDATE`` that takes a lease, and a sweep (the lifecycle tick) that finds
what is due. The row is also the record: the UNIQUE (tenant, local date)
makes a tenant's close of one local date run once, however many schedulers
tick, and the admin lists the runs.

PENDING  planned: ``due_at`` is the cut-off (``cutoff_at``). Planned from
         the tenant's settings when they are first seen, re-planned when
         they change, deleted when ``daily_close_at`` is cleared.
RUNNING  claimed: ``due_at`` is the end of the runner's lease; a runner that
         dies is replaced once it passes.
DONE     every conversation OPEN at the cut-off is closed; ``due_at`` is null.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone


class ScheduledClose(models.Model):
    class Status(models.TextChoices):
        PENDING = "PENDING"
        RUNNING = "RUNNING"
        DONE = "DONE"

    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.CASCADE, related_name="scheduled_closes"
    )
    local_date = models.DateField(help_text="The tenant's local date this close belongs to.")
    # The settings it was planned with; the tick re-plans a PENDING row whose
    # tenant no longer has them.
    local_time = models.TimeField(help_text="daily_close_at when planned.")
    time_zone = models.CharField(max_length=64, help_text="The tenant's zone when planned.")
    cutoff_at = models.DateTimeField(
        help_text="The UTC instant of local_time on local_date (T-2); conversations "
        "created up to it are closed."
    )
    status = models.CharField(max_length=7, choices=Status.choices, default=Status.PENDING)
    due_at = models.DateTimeField(null=True, blank=True)
    closed_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["PENDING", "RUNNING", "DONE"]),
                name="scheduled_close_status_valid",
            ),
            # T-2: a close of one tenant and local date runs once.
            models.UniqueConstraint(
                fields=["tenant", "local_date"], name="scheduled_close_once_per_local_date"
            ),
            # One plan per tenant at a time.
            models.UniqueConstraint(
                fields=["tenant"],
                condition=Q(status="PENDING"),
                name="scheduled_close_one_pending_per_tenant",
            ),
            models.CheckConstraint(
                condition=Q(status="DONE", due_at__isnull=True)
                | Q(status__in=["PENDING", "RUNNING"], due_at__isnull=False),
                name="scheduled_close_due_unless_done",
            ),
        ]
        indexes = [
            # Serves the tick: WHERE due_at IS NOT NULL AND due_at <= %s ORDER BY due_at.
            models.Index(
                fields=["due_at"],
                condition=Q(due_at__isnull=False),
                name="scheduled_close_due_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.local_date} ({self.status})"
