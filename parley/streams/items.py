"""The claim columns every kind's item table has (``models`` explains the claim)."""

from __future__ import annotations

from django.db import models


class StreamItem(models.Model):
    # Null while pending. Set with ``interaction`` by the claim, in one statement.
    delivered_at = models.DateTimeField(null=True, blank=True)
    # The id issued with the answer that carried the item; null once pending
    # again (a released claim) or once the stream and its ids are pruned,
    # which never makes a delivered item pending: ``delivered_at`` decides.
    interaction = models.ForeignKey(
        "streams.Interaction",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        abstract = True
