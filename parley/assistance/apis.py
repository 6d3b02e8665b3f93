"""The assistance API (A-1 to A-3, A-8): requests, and the management of topics and channels."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError
from django.urls import reverse
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework.exceptions import (
    NotFound,
    PermissionDenied,
    UnsupportedMediaType,
    ValidationError,
)
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from parley.assistance import selectors, services
from parley.assistance.body import parse_request
from parley.assistance.errors import InvalidIdempotencyKey
from parley.assistance.models import Channel, Topic
from parley.assistance.serializers import (
    ChannelInput,
    ChannelOutput,
    RequestDetailOutput,
    RequestInput,
    RequestOutput,
    TopicInput,
    TopicOutput,
    render_request,
)
from parley.core.auth import ApiTokenAuthentication, ApiTokenPermission
from parley.core.openapi import problem_responses
from parley.webhooks.signatures import verify_signature

T = TypeVar("T")
TOKEN_ERRORS = problem_responses(
    s401="not_authenticated: the bearer token is missing or wrong.",
    s403="permission_denied: API_TOKEN is not set on the server, so management is off.",
)
IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="Up to 255 visible ASCII characters (quotes optional). The same key and body "
    "within 24 h answer the first answer again; another body is 422 (A-8).",
)
LOCATION = OpenApiParameter(
    "Location",
    str,
    OpenApiParameter.HEADER,
    response=[202],
    description="The request's URL: /assistance-requests/{id}/.",
)


def idempotency_key(raw: str | None) -> str | None:
    """The header as an RFC 8941 string, with or without its quotes; None when absent."""
    if raw is None:
        return None
    key = raw.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not 1 <= len(key) <= 255 or not all(0x21 <= ord(c) <= 0x7E for c in key):
        raise InvalidIdempotencyKey("Idempotency-Key must be 1 to 255 visible ASCII characters.")
    return key


class AssistanceRequestCreateApi(APIView):
    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []

    @extend_schema(
        operation_id="assistance_request_create",
        summary="Ask for a human: route a request to its topic's channel",
        description=(
            "Stores the request and answers 202 at once; a worker delivers it to the channel "
            "its topic maps to, with retries (A-1, A-5 to A-7). When WEBHOOK_SECRET is set, "
            "Standard Webhooks signature headers are required. The path without the trailing "
            "slash works too."
        ),
        request=RequestInput,
        parameters=[IDEMPOTENCY_KEY, LOCATION],
        responses={
            202: OpenApiResponse(RequestOutput, description="Accepted (or an idempotent replay)."),
            **problem_responses(
                s400="invalid_payload (with errors per field), unknown_topic, "
                "invalid_idempotency_key.",
                s401="invalid_signature: missing, bad or stale signature (S-1).",
                s413="payload_too_large: body over WEBHOOK_MAX_BODY_BYTES.",
                s415="unsupported_media_type: the body must be JSON.",
                s422="idempotency_key_reused: the key came with another body in the last 24 h.",
            ),
        },
        tags=["assistance"],
    )
    def post(self, request: Request) -> Response:
        body = request.body  # over DATA_UPLOAD_MAX_MEMORY_SIZE: RequestDataTooBig, a 413
        media_type = (request.content_type or "").split(";", 1)[0].strip().lower()
        if body and not (media_type == "application/json" or media_type.endswith("+json")):
            raise UnsupportedMediaType(request.content_type or "(none)")
        verify_signature(request.headers, body)
        key = idempotency_key(request.headers.get("Idempotency-Key"))
        data = parse_request(body)
        submitted = services.request_submit(
            topic=data.topic,
            description=data.description,
            conversation_id=data.conversation_id,
            metadata=data.metadata,
            idempotency_key=key,
            render=render_request,
        )
        location = reverse("assistance-request-detail", args=[submitted.delivery_id])
        return Response(submitted.body, status=202, headers={"Location": location})


@extend_schema_view(post=extend_schema(exclude=True))
class AssistanceRequestCreateNoSlashApi(AssistanceRequestCreateApi):
    """The same endpoint without the trailing slash (A-1); documented once, above."""


class AssistanceRequestDetailApi(APIView):
    authentication_classes = [ApiTokenAuthentication]
    permission_classes = [ApiTokenPermission]

    @extend_schema(
        operation_id="assistance_request_retrieve",
        summary="Read a request, with one history entry per attempt",
        responses={
            200: OpenApiResponse(RequestDetailOutput, description="The request (A-2)."),
            **problem_responses(
                s401="not_authenticated: API_TOKEN is set and the bearer token is missing "
                "or wrong.",
                s404="not_found: no request has this id, or the id is not a UUID.",
            ),
        },
        tags=["assistance"],
    )
    def get(self, request: Request, request_id: str) -> Response:
        try:
            parsed = UUID(request_id)
        except ValueError as exc:
            raise NotFound(f"No assistance request {request_id!r}.") from exc
        delivery = selectors.request_with_history(request_id=parsed)
        if delivery is None:
            raise NotFound(f"No assistance request {request_id}.")
        return Response(RequestDetailOutput(delivery).data)


class ManagementPermission(BasePermission):
    """Topics and channels: a bearer token always; refused outright without API_TOKEN (A-3)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if not settings.API_TOKEN:
            raise PermissionDenied(
                "Managing topics and channels needs API_TOKEN to be set on the server."
            )
        return request.auth is not None


class _Managed(APIView):
    authentication_classes = [ApiTokenAuthentication]
    permission_classes = [ManagementPermission]


def _validated(input_class: Any, request: Request, *, partial: bool = False) -> dict[str, Any]:
    """The body through ``input_class``; on a PATCH, ``active`` only when it was sent."""
    payload = input_class(data=request.data, partial=partial)
    payload.is_valid(raise_exception=True)
    data = dict(payload.validated_data)
    if partial and "active" not in request.data:
        data.pop("active", None)
    return data


def _save_unique(save: Callable[[], T], *, field: str, taken: bool, what: str) -> T:
    """``save()``, unless ``field``'s new value is taken: then 400 naming it (a race too)."""
    violation = ValidationError({field: [f"A {what} with this {field} exists."]})
    if taken:
        raise violation
    try:
        return save()
    except IntegrityError as exc:
        raise violation from exc


class ChannelListApi(_Managed):
    @extend_schema(
        operation_id="assistance_channel_list",
        summary="List channels (configs are never shown)",
        responses={200: ChannelOutput(many=True), **TOKEN_ERRORS},
        tags=["assistance management"],
    )
    def get(self, request: Request) -> Response:
        return Response(ChannelOutput(selectors.channel_list(), many=True).data)

    @extend_schema(
        operation_id="assistance_channel_create",
        summary="Create a channel; its config is checked against its kind",
        request=ChannelInput,
        responses={
            201: ChannelOutput,
            **problem_responses(s400="invalid_payload: with errors per field (config.url...)."),
            **TOKEN_ERRORS,
        },
        tags=["assistance management"],
    )
    def post(self, request: Request) -> Response:
        data = _validated(ChannelInput, request)
        channel = _save_unique(
            lambda: services.channel_save(**data),
            field="name",
            taken=Channel.objects.filter(name=data["name"]).exists(),
            what="channel",
        )
        return Response(ChannelOutput(channel).data, status=201)


class ChannelDetailApi(_Managed):
    def _channel(self, name: str) -> Channel:
        # NUL cannot be in a name; PostgreSQL would refuse the query.
        channel = Channel.objects.filter(name=name).first() if "\x00" not in name else None
        if channel is None:
            raise NotFound(f"No channel {name!r}.")
        return channel

    @extend_schema(
        operation_id="assistance_channel_retrieve",
        summary="Read a channel (its config is never shown)",
        responses={
            200: ChannelOutput,
            **problem_responses(s404="not_found: no channel has this name."),
            **TOKEN_ERRORS,
        },
        tags=["assistance management"],
    )
    def get(self, request: Request, name: str) -> Response:
        return Response(ChannelOutput(self._channel(name)).data)

    @extend_schema(
        operation_id="assistance_channel_update",
        summary="Change a channel; a new config replaces the old one whole",
        request=ChannelInput(partial=True),
        responses={
            200: ChannelOutput,
            **problem_responses(
                s400="invalid_payload: with errors per field.",
                s404="not_found: no channel has this name.",
            ),
            **TOKEN_ERRORS,
        },
        tags=["assistance management"],
    )
    def patch(self, request: Request, name: str) -> Response:
        channel = self._channel(name)
        data = _validated(ChannelInput, request, partial=True)
        new_name = data.get("name", channel.name)
        channel = _save_unique(
            lambda: services.channel_save(channel=channel, **data),
            field="name",
            taken=new_name != channel.name and Channel.objects.filter(name=new_name).exists(),
            what="channel",
        )
        return Response(ChannelOutput(channel).data)


class TopicListApi(_Managed):
    @extend_schema(
        operation_id="assistance_topic_list",
        summary="List topics and the channel each maps to",
        responses={200: TopicOutput(many=True), **TOKEN_ERRORS},
        tags=["assistance management"],
    )
    def get(self, request: Request) -> Response:
        return Response(TopicOutput(selectors.topics(), many=True).data)

    @extend_schema(
        operation_id="assistance_topic_create",
        summary="Create a topic that maps to a channel (by the channel's name)",
        request=TopicInput,
        responses={
            201: TopicOutput,
            **problem_responses(s400="invalid_payload: with errors per field."),
            **TOKEN_ERRORS,
        },
        tags=["assistance management"],
    )
    def post(self, request: Request) -> Response:
        data = _validated(TopicInput, request)
        topic = _save_unique(
            lambda: services.topic_save(**data),
            field="slug",
            taken=Topic.objects.filter(slug=data["slug"].strip().lower()).exists(),
            what="topic",
        )
        return Response(TopicOutput(topic).data, status=201)


class TopicDetailApi(_Managed):
    def _topic(self, slug: str) -> Topic:
        key = slug.strip().lower()
        topic = (
            Topic.objects.select_related("channel").filter(slug=key).first()
            if "\x00" not in key
            else None
        )
        if topic is None:
            raise NotFound(f"No topic {slug!r}.")
        return topic

    @extend_schema(
        operation_id="assistance_topic_retrieve",
        summary="Read a topic",
        responses={
            200: TopicOutput,
            **problem_responses(s404="not_found: no topic has this slug."),
            **TOKEN_ERRORS,
        },
        tags=["assistance management"],
    )
    def get(self, request: Request, slug: str) -> Response:
        return Response(TopicOutput(self._topic(slug)).data)

    @extend_schema(
        operation_id="assistance_topic_update",
        summary="Change a topic: its name, channel or active flag (or slug)",
        request=TopicInput(partial=True),
        responses={
            200: TopicOutput,
            **problem_responses(
                s400="invalid_payload: with errors per field.",
                s404="not_found: no topic has this slug.",
            ),
            **TOKEN_ERRORS,
        },
        tags=["assistance management"],
    )
    def patch(self, request: Request, slug: str) -> Response:
        topic = self._topic(slug)
        data = _validated(TopicInput, request, partial=True)
        new_slug = data.get("slug", topic.slug).strip().lower()
        topic = _save_unique(
            lambda: services.topic_save(topic=topic, **data),
            field="slug",
            taken=new_slug != topic.slug and Topic.objects.filter(slug=new_slug).exists(),
            what="topic",
        )
        return Response(TopicOutput(topic).data)
