"""The console's pages, each as the page view renders it and as its stream re-renders it.

A *screen* is one page with its parameters: the conversation list with its
filters, one conversation, one panel. The page view renders its whole
template; the stream renders only its live *fragments*, the template's
partials (django-template-partials), from the same context. Fragments are
rendered without a request: they hold nothing of the user who looks (no
CSRF token; htmx sends that from the page), so one rendering serves every
stream that shows the same screen.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from django.conf import settings
from django.http import QueryDict
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from parley.console import registry, selectors
from parley.console.changes import Changes
from parley.console.templatetags import console_tags
from parley.conversations.models import Conversation

SNIPPET_SHOWN = 80  # characters of the last message in the list


class Screen:
    template: str
    fragments: tuple[str, ...]
    section: str  # which navigation entry is current

    @property
    def key(self) -> Hashable:
        raise NotImplementedError

    def context(self) -> dict[str, Any] | None:
        """What the template shows, read now; None when the page's object does not exist."""
        raise NotImplementedError

    def affected_by(self, changes: Changes) -> bool:
        raise NotImplementedError

    def stream_params(self) -> dict[str, str]:
        raise NotImplementedError

    @property
    def stream_query(self) -> str:
        return urlencode(self.stream_params())

    def render_fragments(self) -> str:
        """The live fragments, from the database as it is now (the stream's patch)."""
        context = self.context()
        if context is None:
            return ""
        context["now"] = timezone.now()
        return "".join(
            render_to_string(f"{self.template}#{name}", context) for name in self.fragments
        )


@dataclass(frozen=True)
class Row:
    """A list row, every text ready: the template only places them (it runs often)."""

    id: str
    short: str
    href: str
    tenant: str
    status: str
    status_label: str
    reason: str
    direction: str
    snippet: str
    counts: str
    pending: str
    due_ms: str
    due_text: str
    failed: int
    updated_iso: str
    updated_text: str


def rows(page: selectors.ConversationPage, now: datetime) -> list[Row]:
    nil = str(UUID(int=0))
    href = reverse("console:conversation", args=[nil])
    found = []
    for row in page.rows:
        snippet = row.last_snippet
        if len(snippet) > SNIPPET_SHOWN:
            snippet = snippet[: SNIPPET_SHOWN - 1] + "…"
        due = row.pending_due
        found.append(
            Row(
                id=str(row.id),
                short=str(row.id)[:8],
                href=href.replace(nil, str(row.id)),
                tenant=row.tenant,
                status=row.status,
                status_label=Conversation.Status(row.status).label,
                reason=Conversation.CloseReason(row.close_reason).label if row.close_reason else "",
                direction={"INBOUND": "in", "OUTBOUND": "out"}.get(row.last_type, ""),
                snippet=snippet,
                counts=f"{row.inbound} / {row.outbound}",
                pending=row.pending_status,
                due_ms=console_tags.epoch_ms(due),
                due_text=console_tags.remaining(due, now),
                failed=row.failed,
                updated_iso=console_tags.iso(row.updated_at),
                updated_text=console_tags.utc(row.updated_at),
            )
        )
    return found


@dataclass(frozen=True)
class ConversationList(Screen):
    filters: selectors.ListFilters
    template = "console/conversation_list.html"
    fragments = ("conversation-list",)
    section = "conversations"

    @property
    def key(self) -> Hashable:
        return ("conversations", self.filters)

    def context(self) -> dict[str, Any]:
        page = selectors.conversation_page(self.filters)
        return {"filters": self.filters, "page": page, "rows": rows(page, timezone.now())}

    def affected_by(self, changes: Changes) -> bool:
        return changes.any_conversation()

    def stream_params(self) -> dict[str, str]:
        return {"view": "conversations", **self.filters.params()}


@dataclass(frozen=True)
class ConversationDetail(Screen):
    conversation_id: UUID
    template = "console/conversation.html"
    fragments = ("conversation-meta", "conversation-thread")
    section = "conversations"

    @property
    def key(self) -> Hashable:
        return ("conversation", self.conversation_id)

    def context(self) -> dict[str, Any] | None:
        thread = selectors.conversation_thread(
            self.conversation_id, limit=settings.CONSOLE_THREAD_MESSAGES
        )
        return None if thread is None else {"thread": thread}

    def affected_by(self, changes: Changes) -> bool:
        return changes.conversation(str(self.conversation_id)) or any(
            changes.panel(p.name) for p in registry.panels("conversation")
        )

    def stream_params(self) -> dict[str, str]:
        return {"view": "conversation", "id": str(self.conversation_id)}


@dataclass(frozen=True)
class PanelPage(Screen):
    panel: registry.Panel
    template = "console/panel.html"
    fragments = ("panel-body",)

    @property
    def section(self) -> str:  # type: ignore[override]
        return self.panel.name

    @property
    def key(self) -> Hashable:
        return ("panel", self.panel.name)

    def context(self) -> dict[str, Any]:
        return {"panel": self.panel, "rows": self.panel.query()}

    def affected_by(self, changes: Changes) -> bool:
        return changes.panel(self.panel.name)

    def stream_params(self) -> dict[str, str]:
        return {"view": "panel", "name": self.panel.name}


def from_stream_query(query: QueryDict) -> Screen | None:
    """The screen a stream's URL names (``stream_params``), or None."""
    view = query.get("view")
    if view == "conversations":
        return ConversationList(selectors.ListFilters.from_query(query))
    if view == "conversation":
        try:
            return ConversationDetail(UUID(query.get("id", "")))
        except ValueError:
            return None
    if view == "panel":
        panel = registry.panel(query.get("name", ""))
        return PanelPage(panel) if panel is not None and panel.scope == "page" else None
    return None
