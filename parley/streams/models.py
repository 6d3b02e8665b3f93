"""Streams, the ids they issue, and the items they hand out (SPEC section 8).

A *stream* is one collector's session, from ``start`` to DELETE or expiry.
It belongs to a *kind* (``pix``, ``replies``) and a *key* within it (an
ISPB, a tenant id, or ``""`` for every tenant); at most N are open per key
at once, each holding a numbered *slot*. Every answer of a stream carries an
*interaction* id in ``Pull-Next``; the next request names one of them.

An *item* is what a stream hands out (a Pix message, a reply). Each kind has
its own table of items with the two columns of :class:`StreamItem`; an item
whose ``delivered_at`` is null is pending, and claiming sets both columns in
one statement (``services``). Nothing ever sets ``delivered_at`` back to null
except the release of a claim whose answer never left the server.

The invariants the database holds:

* at most one open stream per (kind, key, slot), so never more open streams
  than slots (a partial unique constraint; ``services.stream_start`` picks
  the slot under a per-key lock);
* a closed stream says why, an open one does not;
* an interaction id is issued once (primary key), with a sequence number
  unique in its stream.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class Stream(models.Model):
    class CloseReason(models.TextChoices):
        DELETED = "deleted"  # the collector's DELETE
        EXPIRED = "expired"  # no request for the kind's idle time
        # The start request's client went away before its answer was handed
        # over: nobody ever learned the stream's id (L-4).
        ABANDONED = "abandoned"

    id = models.BigAutoField(primary_key=True)
    kind = models.CharField(max_length=16)
    key = models.CharField(max_length=64, blank=True)
    slot = models.PositiveSmallIntegerField()
    opened_at = models.DateTimeField()
    # When the stream was opened or last answered.
    last_seen_at = models.DateTimeField()
    # When the stream expires if no request comes: the idle time after the
    # latest request ended, and never before a request in flight can have
    # ended (services.REQUEST_GRACE).
    expires_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    close_reason = models.CharField(  # noqa: DJ001
        max_length=9, choices=CloseReason.choices, null=True, blank=True
    )
    # Sequence number of the latest interaction id issued.
    last_seq = models.PositiveIntegerField(default=0)
    # Items handed out, and those the collector acknowledged (by asking for
    # the next answer with the id that came with them, or by DELETE).
    delivered_count = models.PositiveBigIntegerField(default=0)
    acknowledged_count = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            # never more open streams of a key than slots. The slot is
            # picked under a per-key lock; this makes a mistake impossible.
            models.UniqueConstraint(
                fields=["kind", "key", "slot"],
                condition=Q(closed_at__isnull=True),
                name="stream_one_open_per_slot",
            ),
            models.CheckConstraint(condition=Q(slot__gte=1), name="stream_slot_positive"),
            models.CheckConstraint(
                condition=Q(closed_at__isnull=True, close_reason__isnull=True)
                | Q(
                    closed_at__isnull=False,
                    close_reason__in=["deleted", "expired", "abandoned"],
                ),
                name="stream_close_reason_valid",
            ),
        ]
        indexes = [
            # Serves the sweep: WHERE closed_at IS NULL AND expires_at <= now.
            models.Index(
                fields=["expires_at"],
                condition=Q(closed_at__isnull=True),
                name="stream_open_expiry_idx",
            ),
            # Serves the retention prune: WHERE closed_at < %s.
            models.Index(
                fields=["closed_at"],
                condition=Q(closed_at__isnull=False),
                name="stream_closed_idx",
            ),
        ]

    def __str__(self) -> str:
        state = f"closed ({self.close_reason})" if self.closed_at else "open"
        return f"{self.kind} stream {self.pk} of {self.key or 'every tenant'}, {state}"

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


class Interaction(models.Model):
    """An id issued to a stream in ``Pull-Next`` (X-5, X-9)."""

    id = models.CharField(max_length=12, primary_key=True)
    stream = models.ForeignKey(Stream, on_delete=models.CASCADE, related_name="interactions")
    seq = models.PositiveIntegerField()
    issued_at = models.DateTimeField()
    # Items handed out in the answer that issued this id.
    item_count = models.PositiveSmallIntegerField(default=0)
    # When the collector showed it had them: a request naming this id or a
    # later one, or DELETE.
    acked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # Also serves the acknowledgement (stream_id = %s AND seq <= %s)
            # and the latest id of a stream (ORDER BY seq DESC).
            models.UniqueConstraint(fields=["stream", "seq"], name="interaction_seq_unique"),
        ]

    def __str__(self) -> str:
        return self.id


# The kinds' item tables live with their adapters; Django finds them here.
from parley.streams.items import StreamItem  # noqa: E402
from parley.streams.pix.models import PixMessage  # noqa: E402
from parley.streams.replies.models import ReplyItem  # noqa: E402

__all__ = ["Interaction", "PixMessage", "ReplyItem", "Stream", "StreamItem"]
