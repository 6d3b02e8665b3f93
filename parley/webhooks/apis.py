"""``POST /webhook/``: intake only. Check, parse, hand the event to a service."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import UnsupportedMediaType
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from parley.conversations import selectors, services
from parley.conversations.serializers import ConversationOutput
from parley.core import metrics
from parley.core.errors import ParleyError
from parley.core.openapi import problem_responses
from parley.core.throttling import WebhookRateThrottle
from parley.webhooks.schemas import (
    CloseConversation,
    Event,
    NewConversation,
    NewMessage,
    parse_event,
)
from parley.webhooks.signatures import verify_signature

SAMPLE_CONVERSATION_ID = "6a41b347-8d80-4ce9-84ba-7af66f369f6a"
EVENT_SCHEMA = {
    "oneOf": [
        {"$ref": "#/components/schemas/NewConversation"},
        {"$ref": "#/components/schemas/NewMessage"},
        {"$ref": "#/components/schemas/CloseConversation"},
    ],
    "discriminator": {
        "propertyName": "type",
        "mapping": {
            "NEW_CONVERSATION": "#/components/schemas/NewConversation",
            "NEW_MESSAGE": "#/components/schemas/NewMessage",
            "CLOSE_CONVERSATION": "#/components/schemas/CloseConversation",
        },
    },
}


class MessageAcceptedOutput(serializers.Serializer):
    id = serializers.UUIDField()
    conversation_id = serializers.UUIDField()
    status = serializers.ChoiceField(
        choices=["queued", "buffered"],
        help_text="queued: stored in its conversation; "
        "buffered: waiting for the conversation (B-1).",
    )


def _is_json(media_type: str) -> bool:
    base = media_type.split(";", 1)[0].strip().lower()
    return base == "application/json" or base.endswith("+json")


class WebhookApi(APIView):
    # The raw body is read directly: signatures cover the exact bytes, and
    # msgspec decodes and validates them in one pass. JSONParser is declared
    # for the schema; the media type is checked by hand below.
    parser_classes = [JSONParser]
    throttle_classes = [WebhookRateThrottle]

    @extend_schema(
        operation_id="webhook_receive",
        summary="Receive a conversation event",
        description=(
            "Accepts NEW_CONVERSATION, NEW_MESSAGE and CLOSE_CONVERSATION events (seed 000). "
            "When WEBHOOK_SECRET is set, Standard Webhooks signature headers are required. "
            "Errors are application/problem+json with a stable `code`."
        ),
        request={"application/json": EVENT_SCHEMA},
        responses={
            200: OpenApiResponse(
                ConversationOutput, description="CLOSE_CONVERSATION: closed (W-6)."
            ),
            201: OpenApiResponse(
                ConversationOutput, description="NEW_CONVERSATION: created (W-4)."
            ),
            202: OpenApiResponse(
                MessageAcceptedOutput,
                description="NEW_MESSAGE: accepted, or an identical replay (W-5).",
            ),
            **problem_responses(
                s400="invalid_payload, conversation_exists, conversation_closed, "
                "conversation_not_found, conversation_already_closed, buffer_expired, "
                "message_id_conflict.",
                s401="invalid_signature: missing, bad or stale signature (S-1).",
                s413="payload_too_large: body over WEBHOOK_MAX_BODY_BYTES.",
                s415="unsupported_media_type: the body must be JSON.",
                s429="rate_limited: over WEBHOOK_RATE_LIMIT for this source; see Retry-After.",
            ),
        },
        examples=[
            OpenApiExample(
                "NEW_CONVERSATION",
                request_only=True,
                value={
                    "type": "NEW_CONVERSATION",
                    "timestamp": "2025-06-04T14:20:00Z",
                    "data": {"id": SAMPLE_CONVERSATION_ID},
                },
            ),
            OpenApiExample(
                "NEW_MESSAGE",
                request_only=True,
                value={
                    "type": "NEW_MESSAGE",
                    "timestamp": "2025-06-04T14:20:05Z",
                    "data": {
                        "id": "49108c71-4dca-4af3-9f32-61bc745926e2",
                        "content": "Hi, I'd like information about renting an apartment.",
                        "conversation_id": SAMPLE_CONVERSATION_ID,
                    },
                },
            ),
            OpenApiExample(
                "CLOSE_CONVERSATION",
                request_only=True,
                value={
                    "type": "CLOSE_CONVERSATION",
                    "timestamp": "2025-06-04T14:25:00Z",
                    "data": {"id": SAMPLE_CONVERSATION_ID},
                },
            ),
        ],
        tags=["webhook"],
    )
    def post(self, request: Request) -> Response:
        body = request.body  # over DATA_UPLOAD_MAX_MEMORY_SIZE: RequestDataTooBig, a 413
        # An empty body is simply invalid (400), whatever its media type.
        if body and not _is_json(request.content_type or ""):
            metrics.EVENTS.labels(type="unknown", result="unsupported_media_type").inc()
            raise UnsupportedMediaType(request.content_type or "(none)")
        event_type = "unknown"
        try:
            verify_signature(request.headers, body)
            event = parse_event(body)
            event_type = type(event).__struct_config__.tag  # type: ignore[assignment]
            data, code, result = _dispatch(event)
        except ParleyError as exc:
            metrics.EVENTS.labels(type=event_type, result=exc.code).inc()
            raise
        metrics.EVENTS.labels(type=event_type, result=result).inc()
        return Response(data, status=code)


def _dispatch(event: Event) -> tuple[dict[str, Any], int, str]:
    """Run the event's service; return the body, the status and the metrics result."""
    if isinstance(event, NewMessage):
        ingested = services.message_ingest(
            message_id=event.data.id,
            conversation_id=event.data.conversation_id,
            content=event.data.content,
            timestamp=event.timestamp,
        )
        body = {
            "id": str(ingested.id),
            "conversation_id": str(ingested.conversation_id),
            "status": ingested.status,
        }
        return body, status.HTTP_202_ACCEPTED, "replay" if ingested.replay else ingested.status
    if isinstance(event, NewConversation):
        services.conversation_open(conversation_id=event.data.id)
        return _representation(event.data.id), status.HTTP_201_CREATED, "created"
    assert isinstance(event, CloseConversation)
    services.conversation_close(conversation_id=event.data.id)
    return _representation(event.data.id), status.HTTP_200_OK, "closed"


def _representation(conversation_id: Any) -> dict[str, Any]:
    conversation = selectors.conversation_with_messages(conversation_id=conversation_id)
    return dict(ConversationOutput(conversation).data)
