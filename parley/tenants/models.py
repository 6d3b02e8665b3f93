"""Tenants (SPEC Q-1): who owns a conversation, and in which time zone its day runs.

A tenant is the seed's "project". Conversations that never name one belong to
the default tenant (``DEFAULT_TENANT_ID``, the nil UUID unless set), so the
seed 000 contract is unchanged for clients that know nothing of tenants.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


def default_time_zone() -> str:
    """``DEFAULT_TENANT_TIME_ZONE`` when the row is made, not when the migration was."""
    return str(settings.DEFAULT_TENANT_TIME_ZONE)


class Tenant(models.Model):
    id = models.UUIDField(primary_key=True)
    name = models.CharField(max_length=200, blank=True, default="")
    # An IANA name, checked with zoneinfo wherever it is set (Q-1: never a silent fallback).
    time_zone = models.CharField(max_length=64, default=default_time_zone)
    # T-1, both off (null) by default: close a conversation idle this long...
    idle_close_after = models.PositiveIntegerField(
        null=True, blank=True, help_text="Seconds without any message; empty: never."
    )
    # ...and every OPEN conversation at this local time of the tenant's zone.
    daily_close_at = models.TimeField(
        null=True, blank=True, help_text="Local time HH:MM in the tenant's zone; empty: never."
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(idle_close_after__isnull=True) | Q(idle_close_after__gte=1),
                name="tenant_idle_close_after_positive",
            ),
        ]

    def __str__(self) -> str:
        return self.name or str(self.id)
