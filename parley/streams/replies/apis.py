"""Reply streams (SPEC X-12): a chat platform pulls Parley's replies, each once.

``GET /api/replies/stream/start[?tenant={id}]`` and
``GET|DELETE /api/replies/stream/{interactionId}``: the streaming core's
views with the rules of X-3 to X-9, keyed by the tenant ("" for a stream of
every tenant's replies, with a cap of its own).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.request import Request

from parley.streams import selectors
from parley.streams.errors import InvalidTenant, StreamNotFound
from parley.streams.longpoll import run_db
from parley.streams.openapi import INTERACTION_ID, stream_delete_schema, stream_get_schema
from parley.streams.replies.kind import REPLIES
from parley.streams.views import StreamStartView, StreamView

TAG = "replies"

TENANT = OpenApiParameter(
    "tenant",
    OpenApiTypes.UUID,
    OpenApiParameter.QUERY,
    description="Only this tenant's replies, with a cap of REPLY_STREAM_MAX_PER_TENANT streams "
    "per tenant. Without it: every tenant's replies (streams without a tenant have a cap of "
    "their own). Any UUID is accepted, even of a tenant not seen yet.",
)


class ReplyOutput(serializers.Serializer):
    """An OUTBOUND reply (never an agent's message), in commit order."""

    id = serializers.UUIDField(help_text="The reply's message id.")
    conversation_id = serializers.UUIDField()
    content = serializers.CharField()
    timestamp = serializers.DateTimeField(help_text="When the reply was written, UTC.")
    in_reply_to = serializers.ListField(
        child=serializers.UUIDField(),
        help_text="The INBOUND messages of the burst it answers, in conversation order.",
    )


class ReplyStreamStartApi(StreamStartView):
    kind = REPLIES

    def stream_key(self, request: Request, **kwargs: Any) -> str:
        tenant = request.query_params.get("tenant")
        if tenant is None:
            return ""
        try:
            return str(UUID(tenant))
        except ValueError:
            raise InvalidTenant(f"tenant must be a UUID, not {tenant[:60]!r}.") from None

    @stream_get_schema(
        item=ReplyOutput,
        key_parameters=[TENANT],
        pull_next_example="/api/replies/stream/5oj7tm0jow61",
        opens=True,
        errors={"s400": "invalid_tenant: the tenant is not a UUID."},
        operation_id="replies_stream_start",
        summary="Open a stream of replies and get its first ones",
        description="The Pix streaming rules (X-3 to X-9) applied to Parley's replies: each "
        "recorded reply is handed to one stream, once, in commit order. Long-polls up to "
        "REPLY_STREAM_POLL_SECONDS (at most 8).",
        tags=[TAG],
    )
    async def get(self, request: Request, **kwargs: Any) -> Any:
        return await super().get(request, **kwargs)


class ReplyStreamApi(StreamView):
    kind = REPLIES

    def stream_key(self, request: Request, **kwargs: Any) -> str:
        return ""  # no key in the path: the id names the stream, and its tenant

    async def resolve_key(self, interaction_id: str) -> str:
        key = await run_db(selectors.stream_key_of, kind=REPLIES, interaction_id=interaction_id)
        if key is None:
            raise StreamNotFound(f"No replies stream was ever given the id {interaction_id!r}.")
        return key

    @stream_get_schema(
        item=ReplyOutput,
        key_parameters=[INTERACTION_ID],
        pull_next_example="/api/replies/stream/9kp6a6l7c2ii",
        opens=False,
        errors={},
        operation_id="replies_stream_next",
        summary="Get the next replies of a stream",
        description="Exactly like `start`, on the stream that issued this id; asking with an "
        "id acknowledges the replies that came with it.",
        tags=[TAG],
    )
    async def get(self, request: Request, interaction_id: str, **kwargs: Any) -> Any:
        return await super().get(request, interaction_id, **kwargs)

    @stream_delete_schema(
        key_parameters=[INTERACTION_ID],
        errors={},
        operation_id="replies_stream_delete",
        summary="End a stream of replies",
        description="Acknowledges every reply the stream handed out and frees its slot.",
        tags=[TAG],
    )
    async def delete(self, request: Request, interaction_id: str, **kwargs: Any) -> Any:
        return await super().delete(request, interaction_id, **kwargs)
