"""The console's own panels and actions, registered as any app registers its own.

Each is one query and one template (``parley.console.registry``):

* ``tenants``: every tenant, with its open and all its conversations;
* ``events``: the latest outbox events, the engine's work as it happens;
* the ``conversation_close`` action (W-6, by an operator: reason ``manual``).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.db.models import Count, Q

from parley.console.registry import Action, Panel, register_action, register_panel
from parley.conversations import services
from parley.conversations.models import Conversation
from parley.core.errors import ConversationNotFound
from parley.outbox.models import OutboxEvent
from parley.tenants.models import Tenant

TENANTS_SHOWN = 200
EVENTS_SHOWN = 50


def tenant_rows() -> list[Tenant]:
    return list(
        Tenant.objects.annotate(
            open_conversations=Count("conversations", filter=Q(conversations__status="OPEN")),
            total_conversations=Count("conversations"),
        ).order_by("name", "id")[:TENANTS_SHOWN]
    )


def latest_events() -> list[OutboxEvent]:
    return list(OutboxEvent.objects.order_by("-id")[:EVENTS_SHOWN])


def conversation_close(*, target: str, user: Any) -> str:
    try:
        conversation_id = UUID(target)
    except ValueError:
        raise ConversationNotFound(f"{target!r} is not a conversation id.") from None
    services.conversation_close(
        conversation_id=conversation_id, reason=Conversation.CloseReason.MANUAL
    )
    return "Conversation closed."


register_panel(
    Panel(
        name="tenants",
        title="Tenants",
        template="console/panels/tenants.html",
        query=tenant_rows,
        watches=("conversation.opened", "conversation.closed", "tenant."),
        order=10,
    )
)
register_panel(
    Panel(
        name="events",
        title="Events",
        template="console/panels/events.html",
        query=latest_events,
        watches=("*",),
        order=90,
    )
)
register_action(
    Action(
        name="conversation_close",
        label="Close conversation",
        perform=conversation_close,
        scope="conversation",
        available=lambda conversation: conversation.status == Conversation.Status.OPEN,
        confirm="Close this conversation? A reply still pending is written at once.",
    )
)
