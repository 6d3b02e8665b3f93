"""The ``replies`` kind of stream: Parley's replies, per tenant or for all (SPEC X-12)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from rest_framework.fields import DateTimeField

from parley.conversations.models import Message
from parley.core import sql
from parley.streams import kinds
from parley.streams.replies.models import ReplyItem

# Rung by the trigger of migration 0002, with the reply's tenant as payload.
CHANNEL = "parley_replies"
_MESSAGE_TABLE = Message._meta.db_table
_ITEM_TABLE = ReplyItem._meta.db_table
# A conversation deleted by an operator takes its replies with it: its items
# are never claimed (they go with the retention prune).
_REPLY_EXISTS = f"EXISTS (SELECT 1 FROM {_MESSAGE_TABLE} m WHERE m.id = {_ITEM_TABLE}.message_id)"  # noqa: S608
_TIME = DateTimeField()


class RepliesKind(kinds.StreamKind):
    name = "replies"
    channel = CHANNEL
    item_model = ReplyItem
    poll_seconds_setting = "REPLY_STREAM_POLL_SECONDS"
    max_streams_setting = "REPLY_STREAM_MAX_PER_TENANT"
    idle_seconds_setting = "REPLY_STREAM_IDLE_SECONDS"
    key_column = "tenant_id"
    item_condition = _REPLY_EXISTS
    key_label = "tenant"  # "" is a stream of every tenant's replies

    def key_param(self, key: str) -> Any:
        return sql.adapt([(sql.field(ReplyItem, "tenant_id"), UUID(key))])[0]

    def tenant_id(self, key: str) -> UUID | None:
        return UUID(key) if key else None

    def render(self, ids: Sequence[int]) -> list[Any]:
        """``{id, conversation_id, content, timestamp, in_reply_to}`` per reply (X-12).

        ``in_reply_to`` lists the INBOUND messages of the group the reply
        answers, in the order of the conversation (R-1). Three queries.
        """
        message_ids = dict(ReplyItem.objects.filter(id__in=ids).values_list("id", "message_id"))
        replies = {
            row["id"]: row
            for row in Message.objects.filter(id__in=message_ids.values()).values(
                "id", "conversation_id", "content", "timestamp", "reply_to_id"
            )
        }
        answered: dict[int, list[str]] = {}
        for group_id, message_id in (
            Message.objects.filter(
                group_id__in=[r["reply_to_id"] for r in replies.values() if r["reply_to_id"]],
                type=Message.Type.INBOUND,
            )
            .order_by("timestamp", "received_at", "id")
            .values_list("group_id", "id")
        ):
            answered.setdefault(group_id, []).append(str(message_id))
        out = []
        for item_id in ids:
            reply = replies.get(message_ids.get(item_id))  # type: ignore[arg-type]
            if reply is None:
                continue
            out.append(
                {
                    "id": str(reply["id"]),
                    "conversation_id": str(reply["conversation_id"]),
                    "content": reply["content"],
                    "timestamp": _TIME.to_representation(reply["timestamp"]),
                    "in_reply_to": answered.get(reply["reply_to_id"], []),
                }
            )
        return out

    def pull_next(self, key: str, interaction_id: str) -> str:
        return f"/api/replies/stream/{interaction_id}"


REPLIES = kinds.register(RepliesKind())
