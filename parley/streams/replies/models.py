"""Reply items: the items of ``replies`` streams (SPEC X-12).

Every recorded reply writes a ``reply.sent`` row to the outbox in its own
transaction, on every path (the PostgreSQL functions of the sweeper and the
Python steps alike). A database trigger on that insert (migration 0002 of
this app) adds one item here and rings ``parley_replies`` with the tenant,
in the same transaction: an item exists exactly when its reply is
committed, and its waiting collectors wake at that commit. Why a trigger,
and not a reader of the outbox: README, "Reply streams".

Items point at the reply's message but hold no foreign key to it: a
conversation deleted by an operator takes its messages with it, and its
items simply render nothing (the claim skips them).
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from parley.streams.items import StreamItem


class ReplyItem(StreamItem):
    # Insert order, which is the commit order of the replies' transactions as
    # collectors see it: an item becomes claimable when its reply commits.
    id = models.BigAutoField(primary_key=True)
    message_id = models.UUIDField(unique=True)
    conversation_id = models.UUIDField()
    tenant_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        verbose_name = "reply item"
        indexes = [
            # Serve the claim of a tenant's stream and of an every-tenant stream:
            # WHERE [tenant_id = %s AND] delivered_at IS NULL ORDER BY id LIMIT n.
            models.Index(
                fields=["tenant_id", "id"],
                condition=Q(delivered_at__isnull=True),
                name="reply_item_pending_tenant_idx",
            ),
            models.Index(
                fields=["id"],
                condition=Q(delivered_at__isnull=True),
                name="reply_item_pending_idx",
            ),
            # Serves the retention prune: WHERE created_at < %s.
            models.Index(fields=["created_at"], name="reply_item_created_idx"),
        ]

    def __str__(self) -> str:
        return f"reply {self.message_id}"
