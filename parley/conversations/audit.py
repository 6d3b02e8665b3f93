"""The exactly-once ledger (G-3), read from the database.

Every accepted INBOUND message must be listed in exactly one reply, every
group must have exactly one reply, and no buffered message may sit beside an
open conversation (B-4). The end-to-end tests, the benchmark and
``manage.py audit_replies`` all read it from here.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from uuid import UUID

from django.db import connection, transaction
from django.db.models import Count, Exists, OuterRef

from parley.conversations.models import BufferedMessage, Conversation, Message, MessageGroup


@dataclass(frozen=True)
class Audit:
    messages: int  # accepted INBOUND messages
    groups: int
    replies: int
    unanswered_groups: int  # groups that still owe their reply
    groups_with_extra_replies: int  # impossible by constraint; counted anyway
    messages_unanswered: int  # INBOUND ids that no reply lists
    messages_answered_twice: int  # INBOUND ids that several replies list
    stranded_orphans: int  # still buffered although their conversation exists

    @property
    def lost(self) -> int:
        return self.unanswered_groups + self.messages_unanswered + self.stranded_orphans

    @property
    def duplicated(self) -> int:
        return self.groups_with_extra_replies + self.messages_answered_twice

    def as_dict(self) -> dict[str, int]:
        return {**asdict(self), "lost": self.lost, "duplicated": self.duplicated}


def exactly_once_audit(*, conversation_ids: list[UUID] | None = None) -> Audit:
    """Audit all conversations, or those given, from one consistent view.

    On PostgreSQL every read shares one REPEATABLE READ snapshot. Elsewhere
    the order carries it: groups are read first, and since a reply and its
    group's REPLIED status commit together and replies are only ever added,
    every reply owed by a group read as REPLIED is in the later reads.

    The per-message check reads the ids out of each reply's text, so it holds
    for the default writer (G-2); with a custom writer only the group checks apply.
    """
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        # SQLite: a transaction would take its write lock (IMMEDIATE mode);
        # the read order above is enough.
        return _audit(conversation_ids)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        return _audit(conversation_ids)


def _audit(conversation_ids: list[UUID] | None) -> Audit:
    conversations = Conversation.objects.all()
    if conversation_ids is not None:
        conversations = conversations.filter(pk__in=conversation_ids)
    groups = MessageGroup.objects.filter(conversation__in=conversations)
    group_count = groups.count()
    unanswered_groups = groups.exclude(status=MessageGroup.Status.REPLIED).count()

    inbound = Message.objects.filter(conversation__in=conversations, type="INBOUND")
    replies = Message.objects.filter(conversation__in=conversations, type="OUTBOUND")
    listed: Counter[str] = Counter()
    for content in replies.values_list("content", flat=True).iterator():
        listed.update(line for line in content.split("\n")[1:] if line)
    inbound_ids = [str(pk) for pk in inbound.values_list("pk", flat=True).iterator()]

    stranded = BufferedMessage.objects.filter(
        Exists(Conversation.objects.filter(pk=OuterRef("conversation_id"))),
        status=BufferedMessage.Status.BUFFERED,
    )
    if conversation_ids is not None:
        stranded = stranded.filter(conversation_id__in=conversation_ids)
    return Audit(
        messages=len(inbound_ids),
        groups=group_count,
        replies=replies.count(),
        unanswered_groups=unanswered_groups,
        groups_with_extra_replies=replies.values("reply_to")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
        .count(),
        messages_unanswered=sum(1 for pk in inbound_ids if listed[pk] == 0),
        messages_answered_twice=sum(1 for pk in inbound_ids if listed[pk] > 1),
        stranded_orphans=stranded.count(),
    )
