"""``POST /webhook/``: intake only. Check, parse, hand the event to a service."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import UnsupportedMediaType
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from parley.conversations.serializers import ConversationOutput
from parley.core import metrics
from parley.core.errors import ParleyError
from parley.core.openapi import problem_responses
from parley.core.throttling import WebhookRateThrottle
from parley.webhooks import dispatch
from parley.webhooks.schemas import parse_event
from parley.webhooks.signatures import verify_signature

SAMPLE_CONVERSATION_ID = "6a41b347-8d80-4ce9-84ba-7af66f369f6a"
NATIVE_EVENTS = {
    "NEW_CONVERSATION": "NewConversation",
    "NEW_MESSAGE": "NewMessage",
    "CLOSE_CONVERSATION": "CloseConversation",
    "SURVEY_RESPONSE": "SurveyResponse",
}
ENVELOPE_EVENTS = {"message.received": "MessageReceived", "message.sent": "MessageSent"}


def _one_of(events: dict[str, str], tag: str) -> dict[str, object]:
    refs = {name: f"#/components/schemas/{component}" for name, component in events.items()}
    return {
        "oneOf": [{"$ref": ref} for ref in refs.values()],
        "discriminator": {"propertyName": tag, "mapping": refs},
    }


# Parley's own events (discriminated by ``type``) or the seed's envelope (by ``event_type``).
EVENT_SCHEMA = {"oneOf": [_one_of(NATIVE_EVENTS, "type"), _one_of(ENVELOPE_EVENTS, "event_type")]}


class MessageAcceptedOutput(serializers.Serializer):
    id = serializers.UUIDField()
    conversation_id = serializers.UUIDField()
    status = serializers.ChoiceField(
        choices=["queued", "buffered", "stored", "recorded"],
        help_text="queued: stored in its conversation, to be answered; "
        "buffered: waiting for the conversation (B-1); stored: an agent's message.sent, "
        "never answered (Q-2); recorded: a survey answer (Q-3).",
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
            "Accepts NEW_CONVERSATION, NEW_MESSAGE, CLOSE_CONVERSATION (seed 000) and "
            "SURVEY_RESPONSE events, and the seed 001 envelope (message.received, message.sent). "
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
                description="NEW_MESSAGE, message.received, message.sent: accepted, or an "
                "identical replay (W-5, Q-2); SURVEY_RESPONSE or a weni_csat/weni_nps "
                "message.received: recorded (Q-3).",
            ),
            **problem_responses(
                s400="invalid_payload, conversation_exists, conversation_closed, "
                "conversation_not_found, conversation_already_closed, buffer_expired, "
                "message_id_conflict, invalid_score.",
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
            OpenApiExample(
                "SURVEY_RESPONSE",
                request_only=True,
                value={
                    "type": "SURVEY_RESPONSE",
                    "timestamp": "2025-06-04T14:26:00Z",
                    "data": {
                        "id": "0b8f2d3e-5a8c-4f5e-9a4a-3c1f9d7e2b10",
                        "conversation_id": SAMPLE_CONVERSATION_ID,
                        "kind": "NPS",
                        "score": 9,
                    },
                },
            ),
            OpenApiExample(
                "message.received (seed 001 envelope)",
                request_only=True,
                value={
                    "event_type": "message.received",
                    "correlation_id": "5f0c9a52-3d1e-4f0b-8d8e-2b7c1a9e4d01",
                    "data": {
                        "project_uuid": "1c9d4f1e-7a2b-4c3d-9e8f-0a1b2c3d4e5f",
                        "contact_urn": "whatsapp:5511999990000",
                        "channel_uuid": "8e2b6c1a-4d3f-4b5a-9c7d-6e5f4a3b2c1d",
                        "message": {
                            "id": "wamid.HBgLNTUxMTk5OTk5MDAwMBUCABIYFjNFQjA",
                            "text": "Hi, is the apartment still available?",
                            "source": "incoming",
                            "created_at": "2025-06-04T14:20:05Z",
                            "contact_name": "Ana",
                        },
                    },
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
            event_type = dispatch.event_type(event)
            applied = dispatch.event_apply(event)
        except ParleyError as exc:
            metrics.EVENTS.labels(type=event_type, result=exc.code).inc()
            raise
        metrics.EVENTS.labels(type=event_type, result=applied.result).inc()
        return Response(applied.body, status=applied.status)
