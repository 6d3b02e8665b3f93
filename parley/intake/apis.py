"""``GET /intake/dead-letters/`` and ``POST /intake/dead-letters/{id}/redrive`` (Q-7)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from parley.core.auth import ApiTokenAuthentication, ApiTokenPermission
from parley.core.openapi import problem_responses
from parley.core.pagination import Pages, paginated
from parley.intake import selectors, services
from parley.intake.models import SOURCES, DeadLetter

_UNAUTHENTICATED = "not_authenticated: API_TOKEN is set and the bearer token is missing or wrong."


class DeadLetterOutput(serializers.Serializer):
    id = serializers.IntegerField()
    source = serializers.ChoiceField(choices=list(SOURCES))  # type: ignore[assignment]
    received_at = serializers.DateTimeField()
    reason = serializers.CharField()
    code = serializers.CharField(
        help_text="invalid_json, unknown_type, invalid_payload, invalid_score, gave_up, "
        "or the refusal's own code (conversation_closed, ...)."
    )
    body = serializers.CharField(help_text="The raw body; bytes that are not UTF-8 replaced.")
    body_base64 = serializers.CharField(
        required=False, help_text="Only when the body was not UTF-8 text: the original bytes."
    )
    queue = serializers.CharField()
    event_id = serializers.CharField(allow_null=True)
    deliveries = serializers.IntegerField()
    redrive_count = serializers.IntegerField()
    redriven_at = serializers.DateTimeField(allow_null=True)
    redrive_result = serializers.CharField(
        allow_null=True, help_text="applied, duplicate, or the code it was refused with again."
    )

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data: dict[str, Any] = super().to_representation(instance)
        if data.get("body_base64") is None:
            data.pop("body_base64", None)
        return data


class RedriveOutput(serializers.Serializer):
    outcome = serializers.ChoiceField(
        choices=["applied", "duplicate", "dead_lettered"],
        help_text="applied: the event took effect now; duplicate: it had been applied before; "
        "dead_lettered: refused again (see code).",
    )
    code = serializers.CharField(allow_null=True)
    dead_letter = DeadLetterOutput()


class DeadLetterListApi(APIView):
    authentication_classes = [ApiTokenAuthentication]
    permission_classes = [ApiTokenPermission]

    @extend_schema(
        operation_id="dead_letter_list",
        summary="List dead letters, newest first",
        parameters=[
            OpenApiParameter("code", OpenApiTypes.STR, description="Only this code."),
            OpenApiParameter("page", OpenApiTypes.INT, description="Page number, from 1."),
            OpenApiParameter("page_size", OpenApiTypes.INT, description="At most 200."),
        ],
        responses={
            200: DeadLetterOutput(many=True),
            **problem_responses(s401=_UNAUTHENTICATED, s404="not_found: no such page."),
        },
        tags=["intake"],
    )
    def get(self, request: Request) -> Response:
        letters = selectors.dead_letters(code=request.query_params.get("code") or None)
        return paginated(request, letters, DeadLetterOutput, self)

    def get_serializer(self, *args: Any, **kwargs: Any) -> DeadLetterOutput:
        return DeadLetterOutput(*args, **kwargs)  # for the schema's pagination

    pagination_class = Pages


class DeadLetterRedriveApi(APIView):
    authentication_classes = [ApiTokenAuthentication]
    permission_classes = [ApiTokenPermission]

    @extend_schema(
        operation_id="dead_letter_redrive",
        summary="Apply a dead letter's event again",
        description="Goes through the inbox: an event applied since is a duplicate. "
        "Refused again, the dead letter stays, with the new reason.",
        request=None,
        responses={
            200: RedriveOutput,
            **problem_responses(s401=_UNAUTHENTICATED, s404="not_found: no such dead letter."),
        },
        tags=["intake"],
    )
    def post(self, request: Request, dead_letter_id: str) -> Response:
        if not dead_letter_id.isdigit():
            raise NotFound(f"No dead letter {dead_letter_id!r}.")
        try:
            redriven = services.dead_letter_redrive(dead_letter_id=int(dead_letter_id))
        except DeadLetter.DoesNotExist as exc:
            raise NotFound(f"No dead letter {dead_letter_id}.") from exc
        return Response(
            {
                "outcome": redriven.outcome.value,
                "code": redriven.code,
                "dead_letter": DeadLetterOutput(redriven.dead_letter).data,
            }
        )
