"""The exactly-once ledger (G-3, G-8), read from the database.

Every accepted INBOUND message is in exactly one group; every group has
exactly one reply or is FAILED with a reason (G-8), and every message is
listed in exactly one reply unless its group is FAILED; no buffered message
may sit beside an open conversation (B-4). FAILED groups are counted apart:
they are neither lost nor answered. The end-to-end tests, the benchmark and
``manage.py audit_replies`` all read it from here.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from uuid import UUID

from django.db import connection, transaction
from django.db.models import Count, Exists, OuterRef, Q

from parley.conversations.models import BufferedMessage, Conversation, Message, MessageGroup


@dataclass(frozen=True)
class Audit:
    messages: int  # accepted INBOUND messages
    groups: int
    replies: int
    unanswered_groups: int  # groups that still owe their reply (neither REPLIED nor FAILED)
    groups_with_extra_replies: int  # impossible by constraint; counted anyway
    messages_unanswered: int  # INBOUND ids that no reply lists (outside FAILED groups)
    messages_answered_twice: int  # INBOUND ids that several replies list
    stranded_orphans: int  # still buffered although their conversation exists
    failed_groups: int = 0  # FAILED with a reason (G-8): an operator may retry them
    failed_messages: int = 0  # INBOUND messages of those groups, unanswered by design
    failed_without_reason: int = 0  # FAILED with no last_error: impossible, counted anyway

    @property
    def lost(self) -> int:
        return (
            self.unanswered_groups
            + self.messages_unanswered
            + self.stranded_orphans
            + self.failed_without_reason
        )

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
    unanswered_groups = groups.exclude(
        status__in=[MessageGroup.Status.REPLIED, MessageGroup.Status.FAILED]
    ).count()
    failed = groups.filter(status=MessageGroup.Status.FAILED)
    failed_groups = failed.count()
    failed_without_reason = failed.filter(Q(last_error__isnull=True) | Q(last_error="")).count()

    inbound = Message.objects.filter(conversation__in=conversations, type="INBOUND")
    failed_ids = {
        str(pk)
        for pk in inbound.filter(group__status=MessageGroup.Status.FAILED).values_list(
            "pk", flat=True
        )
    }
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
        messages_unanswered=sum(
            1 for pk in inbound_ids if listed[pk] == 0 and pk not in failed_ids
        ),
        messages_answered_twice=sum(1 for pk in inbound_ids if listed[pk] > 1),
        stranded_orphans=stranded.count(),
        failed_groups=failed_groups,
        failed_messages=len(failed_ids),
        failed_without_reason=failed_without_reason,
    )
