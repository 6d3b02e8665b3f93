"""``GET /conversations/{id}/`` (R-1 to R-3)."""

from __future__ import annotations

from uuid import UUID

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from parley.conversations import selectors
from parley.conversations.serializers import ConversationOutput
from parley.core.auth import ApiTokenAuthentication, ApiTokenPermission
from parley.core.openapi import problem_responses


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
