"""``GET /conversations/{id}/`` (R-1 to R-3) and ``GET /conversations/`` (Q-9)."""

from __future__ import annotations

from uuid import UUID

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from parley.conversations import selectors
from parley.conversations.models import Conversation
from parley.conversations.serializers import ConversationOutput, ConversationSummaryOutput
from parley.core.auth import ApiTokenAuthentication, ApiTokenPermission
from parley.core.errors import InvalidPayload
from parley.core.openapi import problem_responses
from parley.core.pagination import Pages, paginated


class ConversationDetailApi(APIView):
    authentication_classes = [ApiTokenAuthentication]
    permission_classes = [ApiTokenPermission]

    @extend_schema(
        operation_id="conversation_retrieve",
        summary="Read a conversation and its messages",
        responses={
            200: OpenApiResponse(ConversationOutput, description="The conversation."),
            **problem_responses(
                s401="not_authenticated: API_TOKEN is set and the bearer token is missing "
                "or wrong.",
                s404="not_found: no conversation has this id, or the id is not a UUID.",
            ),
        },
        tags=["conversations"],
    )
    def get(self, request: Request, conversation_id: str) -> Response:
        try:
            # a malformed id is simply not found.
            parsed = UUID(conversation_id)
        except ValueError as exc:
            raise NotFound(f"No conversation {conversation_id!r}.") from exc
        conversation = selectors.conversation_with_messages(conversation_id=parsed)
        if conversation is None:
            raise NotFound(f"No conversation {conversation_id}.")
        return Response(ConversationOutput(conversation).data)


class ConversationListApi(APIView):
    authentication_classes = [ApiTokenAuthentication]
    permission_classes = [ApiTokenPermission]
    pagination_class = Pages

    @extend_schema(
        operation_id="conversation_list",
        summary="Find conversations, newest first",
        parameters=[
            OpenApiParameter("tenant_id", OpenApiTypes.UUID, description="Owner (Q-1)."),
            OpenApiParameter("channel_uuid", OpenApiTypes.STR, description="Seed envelope key."),
            OpenApiParameter("contact_urn", OpenApiTypes.STR, description="Seed envelope key."),
            OpenApiParameter("status", OpenApiTypes.STR, description="OPEN or CLOSED."),
            OpenApiParameter("page", OpenApiTypes.INT, description="Page number, from 1."),
            OpenApiParameter("page_size", OpenApiTypes.INT, description="At most 200."),
        ],
        responses={
            200: ConversationSummaryOutput(many=True),
            **problem_responses(
                s400="invalid_payload: tenant_id is not a UUID, or status is not OPEN or CLOSED.",
                s401="not_authenticated: API_TOKEN is set and the bearer token is missing "
                "or wrong.",
                s404="not_found: no such page.",
            ),
        },
        tags=["conversations"],
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        errors: dict[str, list[str]] = {}
        tenant_id = None
        if params.get("tenant_id"):
            try:
                tenant_id = UUID(params["tenant_id"])
            except ValueError:
                errors["tenant_id"] = ["Must be a UUID."]
        status = params.get("status") or None
        if status is not None and status not in Conversation.Status.values:
            errors["status"] = ["Must be OPEN or CLOSED."]
        if errors:
            raise InvalidPayload("The query failed validation.", errors=errors)
        conversations = selectors.conversations_find(
            tenant_id=tenant_id,
            channel_uuid=params.get("channel_uuid") or None,
            contact_urn=params.get("contact_urn") or None,
            status=status,
        )
        return paginated(request, conversations, ConversationSummaryOutput, self)
