"""OpenAPI pieces shared by every endpoint: the problem+json error schema."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

from parley.core.errors import PROBLEM_CONTENT_TYPE

# RFC 9457 problem details, with Parley's stable ``code``. Built with
# inline_serializer because a declared field called ``errors`` would shadow
# Serializer.errors.
ProblemSerializer = inline_serializer(
    name="Problem",
    fields={
        "type": serializers.CharField(
            help_text="URN naming the problem, e.g. urn:parley:problem:invalid_payload."
        ),
        "title": serializers.CharField(),
        "status": serializers.IntegerField(),
        "detail": serializers.CharField(),
        "code": serializers.CharField(help_text="Stable machine-readable code."),
        "errors": serializers.DictField(
            child=serializers.ListField(child=serializers.CharField()),
            required=False,
            help_text="For validation errors: each field (dotted path) mapped to its messages.",
        ),
    },
)


def problem_responses(**by_status: str) -> dict[tuple[int, str], OpenApiResponse]:
    """``problem_responses(s400="...", s404="...")`` → drf-spectacular response entries."""
    return {
        (int(key[1:]), PROBLEM_CONTENT_TYPE): OpenApiResponse(ProblemSerializer, description=text)
        for key, text in by_status.items()
    }
