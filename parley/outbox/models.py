"""The outbox: one row per fact, written in the same transaction as the fact.

Readers (the analytics exporter, the console's event stream) keep a cursor
and read on from it; nothing is lost while a reader is down, and nothing is
read twice. The row is the only record of the event that readers need: it
names the fact (``type``), when it happened (``occurred_at``), whose it is
(``tenant_id``, ``subject``) and the ids that let a reader look the rest up
(``data``).

Reading in commit order. ``id`` comes from a sequence, and sequence values
are taken when a row is inserted, not when its transaction commits: a reader
that saw row 11 could later find row 10 appear. So every row also records
its transaction's id (``txid``, PostgreSQL's ``pg_current_xact_id()``, set
by the column's default), and readers only take rows whose transactions are
older than every writing transaction still running in this database (the
snapshot's ``xmin``, leaving out other databases: migration 0003). Those
rows are final, and any row committed later has a larger ``txid``: ordering
by ``(txid, id)`` is a total order that only grows at the end, so a cursor
``(txid, id)`` never skips a row (``selectors.events_after``). On SQLite
every writer is serialised, ids commit in order, and ``txid`` stays 0.
"""

from __future__ import annotations

from django.db import models


class OutboxEvent(models.Model):
    # The sequence number ("seq" of SPEC T-4).
    id = models.BigAutoField(primary_key=True)
    # PostgreSQL: the writing transaction's id, from the column default that
    # migration 0002 sets (pg_current_xact_id()). Never written by the code.
    txid = models.BigIntegerField(db_default=0, editable=False)
    type = models.CharField(max_length=64)
    occurred_at = models.DateTimeField(help_text="When the fact happened (server time).")
    tenant_id = models.UUIDField(null=True, blank=True)
    # What the fact is about: a conversation id, a request id, an ISPB...
    subject = models.CharField(max_length=64, blank=True, default="")
    data = models.JSONField(default=dict)

    class Meta:
        indexes = [
            # Serves every reader: WHERE (txid, id) > (%s, %s) AND txid < horizon
            # ORDER BY txid, id LIMIT n.
            models.Index(fields=["txid", "id"], name="outbox_position_idx"),
            # Serves the retention sweep: WHERE occurred_at < %s.
            models.Index(fields=["occurred_at"], name="outbox_occurred_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.type}"


class OutboxCursor(models.Model):
    """How far a durable reader (the analytics exporter) has read.

    The retention sweep never deletes past the slowest durable cursor, so a
    reader that is down for a day still finds every event it has not read.
    """

    name = models.CharField(max_length=63, primary_key=True)
    txid = models.BigIntegerField(default=-1)
    event_id = models.BigIntegerField(default=-1)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} at ({self.txid}, {self.event_id})"
