"""The console's reads: a page of conversations, a conversation's thread.

Each runs a fixed number of queries, however many conversations, messages
or groups there are (C-2), because the live stream runs them again after
every change it is told of.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from django.db import connection
from django.db.models import Count, Exists, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce, Substr
from django.http import QueryDict

from parley.console import registry
from parley.conversations.models import Conversation, Message, MessageGroup
from parley.conversations.selectors import MESSAGE_ORDER
from parley.tenants.models import Tenant

PAGE_SIZE = 50  # conversations a page (C-2)
SNIPPET_CHARS = 120  # of the last message, in the list
SEARCH_MAX_CHARS = 200
TENANT_CHOICES_MAX = 500  # tenants offered by the filter; more: search by name
# A group that still owes its reply, as the sweeper sees it.
OWING = (MessageGroup.Status.OPEN, MessageGroup.Status.CLOSED)
SHOWN_GROUPS = (*OWING, MessageGroup.Status.FAILED)
SETTLED = (MessageGroup.Status.REPLIED, MessageGroup.Status.FAILED)


# --- The list -------------------------------------------------------------------------


@dataclass(frozen=True)
class ListFilters:
    """The list's filters and page, as kept in the URL (C-2)."""

    status: str = ""  # "", OPEN or CLOSED
    pending: str = ""  # "": any; "yes": owes a reply; "no": owes none
    failed: bool = False  # only conversations with a FAILED reply
    tenant: UUID | None = None
    q: str = ""
    page: int = 1

    @classmethod
    def from_query(cls, query: QueryDict) -> ListFilters:
        """Read the URL's filters; a value that makes no sense is ignored, never an error."""
        status = query.get("status", "")
        pending = query.get("pending", "")
        try:
            tenant = UUID(query.get("tenant", "")) if query.get("tenant") else None
        except ValueError:
            tenant = None
        try:
            page = max(1, min(int(query.get("page", "1")), 100_000))
        except ValueError:
            page = 1
        return cls(
            status=status if status in Conversation.Status.values else "",
            pending=pending if pending in ("yes", "no") else "",
            failed=query.get("failed") in ("1", "on", "yes", "true"),
            tenant=tenant,
            q=" ".join(query.get("q", "").split())[:SEARCH_MAX_CHARS],
            page=page,
        )

    def params(self, **changes: Any) -> dict[str, str]:
        """The filters as URL parameters, without the empty ones."""
        f = replace(self, **changes)
        params = {
            "status": f.status,
            "pending": f.pending,
            "failed": "1" if f.failed else "",
            "tenant": str(f.tenant) if f.tenant else "",
            "q": f.q,
            "page": str(f.page) if f.page > 1 else "",
        }
        return {k: v for k, v in params.items() if v}

    def query_string(self, **changes: Any) -> str:
        return urlencode(self.params(**changes))

    @property
    def active(self) -> bool:
        return bool(self.params(page=1))


@dataclass
class ConversationRow:
    id: UUID
    tenant: str
    status: str
    close_reason: str | None
    updated_at: datetime
    inbound: int = 0
    outbound: int = 0
    # The last message in R-1 order: INBOUND or OUTBOUND ("": none), its first characters.
    last_type: str = ""
    last_snippet: str = ""
    # The earliest reply still owed: its group's status and due time.
    pending_status: str = ""
    pending_due: datetime | None = None
    failed: int = 0


@dataclass(frozen=True)
class ConversationPage:
    filters: ListFilters
    rows: list[ConversationRow]
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.filters.page > 1


def _search(q: str) -> Any:
    """Conversations a search matches: an id (conversation or message), a contact,
    a channel, a tenant's name, or words in a message."""
    try:
        exact = uuid.UUID(q)
    except ValueError:
        exact = None
    if exact is not None:
        return Q(pk=exact) | Exists(Message.objects.filter(conversation=OuterRef("pk"), pk=exact))
    return (
        Q(id__istartswith=q)
        | Q(contact_urn__icontains=q)
        | Q(channel_uuid__icontains=q)
        | Q(tenant__name__icontains=q)
        | Exists(Message.objects.filter(conversation=OuterRef("pk"), content__icontains=q))
    )


def _per_conversation(queryset: Any, column: str) -> Subquery:
    """One value of the current row's conversation, as a correlated subquery.

    Each is an index lookup by conversation (PostgreSQL runs it for the 51
    rows of the page only), so the list costs one round trip whatever the
    size of the tables, and one prepared statement that the stream reuses.
    """
    return Subquery(queryset.filter(conversation=OuterRef("pk")).values(column)[:1])


def _count(queryset: Any) -> Coalesce:
    counted = queryset.filter(conversation=OuterRef("pk")).order_by().values("conversation")
    return Coalesce(Subquery(counted.annotate(n=Count("pk")).values("n")), 0)


def page_queryset(filters: ListFilters) -> Any:
    """The query of a page of the list: rows of plain values, newest activity first."""
    owing = MessageGroup.objects.filter(conversation=OuterRef("pk"), status__in=OWING)
    conversations = Conversation.objects.all()
    if filters.status:
        conversations = conversations.filter(status=filters.status)
    if filters.tenant:
        conversations = conversations.filter(tenant_id=filters.tenant)
    if filters.pending == "yes":
        conversations = conversations.filter(Exists(owing))
    elif filters.pending == "no":
        conversations = conversations.filter(~Exists(owing))
    if filters.failed:
        failed = MessageGroup.objects.filter(
            conversation=OuterRef("pk"), status=MessageGroup.Status.FAILED
        )
        conversations = conversations.filter(Exists(failed))
    if filters.q:
        conversations = conversations.filter(_search(filters.q))
    latest = Message.objects.order_by(*(f"-{name}" for name in MESSAGE_ORDER))
    # "Not settled" rather than "OPEN or CLOSED" (the same, by the status check): so
    # PostgreSQL looks up the conversation's few groups by its foreign key
    # instead of combining that with the sweeper's index of every owed group.
    first_owed = MessageGroup.objects.exclude(status__in=SETTLED).order_by("reply_due_at")
    start = (filters.page - 1) * PAGE_SIZE
    return (
        conversations.annotate(
            last_type=_per_conversation(latest, "type"),
            last_snippet=_per_conversation(
                latest.annotate(snippet=Substr("content", 1, SNIPPET_CHARS + 1)), "snippet"
            ),
            inbound=_count(Message.objects.filter(type=Message.Type.INBOUND)),
            outbound=_count(Message.objects.filter(type=Message.Type.OUTBOUND)),
            pending_status=_per_conversation(first_owed, "status"),
            pending_due=_per_conversation(first_owed, "reply_due_at"),
            failed=_count(MessageGroup.objects.filter(status=MessageGroup.Status.FAILED)),
        )
        .order_by("-updated_at", "-id")
        .values_list(
            "pk",
            "tenant_id",
            "tenant__name",
            "status",
            "close_reason",
            "updated_at",
            "inbound",
            "outbound",
            "last_type",
            "last_snippet",
            "pending_status",
            "pending_due",
            "failed",
        )[start : start + PAGE_SIZE + 1]
    )


@lru_cache(maxsize=128)
def _compiled(filters: ListFilters) -> tuple[str, tuple[Any, ...]]:
    """The page's SQL and parameters, compiled once per set of filters (PostgreSQL).

    The stream runs a list page again after every change, twice a second
    under load, and Django took longer to build and compile this query (about
    7 ms) than PostgreSQL took to run it (about 3 ms). The SQL of a set of
    filters never changes; psycopg returns every column of it already typed
    (UUIDs, aware datetimes), so the rows need none of Django's converters.
    """
    sql, params = page_queryset(filters).query.sql_with_params()
    return sql, tuple(params)


def conversation_page(filters: ListFilters) -> ConversationPage:
    """A page of conversations, newest activity first, in one query."""
    found: list[Any]
    if connection.vendor == "postgresql":
        sql, params = _compiled(filters)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            found = cursor.fetchall()
    else:
        found = list(page_queryset(filters))
    rows = [
        ConversationRow(
            id=pk,
            tenant=tenant_name or str(tenant_id),
            status=status,
            close_reason=reason,
            updated_at=updated_at,
            inbound=inbound,
            outbound=outbound,
            last_type=last_type or "",
            last_snippet=last_snippet or "",
            pending_status=pending_status or "",
            pending_due=pending_due,
            failed=failed,
        )
        for (
            pk,
            tenant_id,
            tenant_name,
            status,
            reason,
            updated_at,
            inbound,
            outbound,
            last_type,
            last_snippet,
            pending_status,
            pending_due,
            failed,
        ) in found[:PAGE_SIZE]
    ]
    return ConversationPage(filters=filters, rows=rows, has_next=len(found) > PAGE_SIZE)


def tenant_choices() -> list[Tenant]:
    return list(Tenant.objects.order_by("name", "id")[:TENANT_CHOICES_MAX])


# --- A conversation ---------------------------------------------------------------------


@dataclass
class Thread:
    conversation: Conversation
    messages: list[Message]
    # True when older messages than the first shown exist.
    truncated: bool
    inbound: int
    outbound: int
    # Groups that still owe a reply (OPEN, CLOSED) and those that failed (FAILED).
    pending: list[MessageGroup]
    failed: list[MessageGroup]
    panels: list[tuple[registry.Panel, Any]] = field(default_factory=list)


def conversation_thread(conversation_id: UUID, *, limit: int) -> Thread | None:
    """A conversation, its latest ``limit`` messages in R-1 order and its unsettled
    groups: four queries, plus one for each conversation panel."""
    conversation = Conversation.objects.select_related("tenant").filter(pk=conversation_id).first()
    if conversation is None:
        return None
    newest_first = list(
        Message.objects.filter(conversation_id=conversation_id).order_by(
            *(f"-{name}" for name in MESSAGE_ORDER)
        )[: limit + 1]
    )
    counts = dict(
        Message.objects.filter(conversation_id=conversation_id)
        .order_by()
        .values_list("type")
        .annotate(n=Count("pk"))
        .values_list("type", "n")
    )
    groups = list(
        MessageGroup.objects.filter(
            conversation_id=conversation_id, status__in=SHOWN_GROUPS
        ).order_by("id")
    )
    return Thread(
        conversation=conversation,
        messages=newest_first[:limit][::-1],
        truncated=len(newest_first) > limit,
        inbound=counts.get(Message.Type.INBOUND, 0),
        outbound=counts.get(Message.Type.OUTBOUND, 0),
        pending=[g for g in groups if g.status in OWING],
        failed=[g for g in groups if g.status == MessageGroup.Status.FAILED],
        panels=[
            (panel, panel.query(conversation_id=conversation_id))
            for panel in registry.panels("conversation")
        ],
    )
