"""The OpenAPI description every kind of stream shares: headers, answers, errors."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)

from parley.core.openapi import problem_responses
from parley.streams.negotiation import BATCH_LIMIT

INTERACTION_ID = OpenApiParameter(
    "interaction_id",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    pattern="^[a-z0-9]{12}$",
    description="The id in the latest (or any earlier) Pull-Next of a live stream: "
    "12 lowercase alphanumerics.",
)
ACCEPT = OpenApiParameter(
    "Accept",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description=(
        "Absent, `application/json` or `*/*`: one item, a JSON object. `multipart/json`: a "
        f"JSON array of every available item, up to {BATCH_LIMIT}. Real negotiation "
        "(parameters, q-values, lists): at equal quality a named `multipart/json` wins. "
        "406 `not_acceptable` when neither is acceptable, opening and consuming nothing. "
        "Both answers are `Content-Type: application/json`."
    ),
)


def pull_next(example: str) -> OpenApiParameter:
    return OpenApiParameter(
        "Pull-Next",
        OpenApiTypes.STR,
        OpenApiParameter.HEADER,
        required=True,
        response=[200, 204],
        description=f"The path of the next request of this stream, e.g. `{example}`: a new id "
        "on each 200, the latest id on a 204. Errors carry none.",
    )


ALLOW = OpenApiParameter(
    "Allow",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=True,
    response=[405],
    description="The methods this path takes (X-10).",
)
RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    OpenApiTypes.INT,
    OpenApiParameter.HEADER,
    required=True,
    response=[429],
    description="Seconds until the first open stream of the key could expire.",
)


def stream_get_schema(
    *,
    item: Any,
    key_parameters: list[OpenApiParameter],
    pull_next_example: str,
    opens: bool,
    errors: dict[str, str],
    **kwargs: Any,
) -> Any:
    """``extend_schema`` for a stream GET: the item alone or a batch, 204, the shared errors."""
    name = item.__name__.removesuffix("Serializer").removesuffix("Output")
    body = PolymorphicProxySerializer(
        component_name=f"{name}Answer",
        serializers=[item, item(many=True)],
        resource_type_field_name=None,
        many=False,
    )
    shared = {
        "s401": "not_authenticated: API_TOKEN is set and the bearer token is missing or wrong.",
        "s405": "method_not_allowed: see the Allow header.",
        "s406": "not_acceptable: Accept allows neither application/json nor multipart/json.",
    }
    if opens:
        shared["s429"] = (
            "too_many_streams: every slot of this key is held by an open stream; nothing was "
            "opened or consumed. See Retry-After."
        )
    else:
        shared["s404"] = "stream_not_found: no stream of this key was ever given this id."
        shared["s410"] = "stream_closed: the stream was deleted or has expired."
    return extend_schema(
        parameters=[
            *key_parameters,
            ACCEPT,
            pull_next(pull_next_example),
            ALLOW,
            *([RETRY_AFTER] if opens else []),
        ],
        responses={
            (200, "application/json"): OpenApiResponse(
                body,
                description="One item (Accept: application/json, */* or none), or 1 to "
                f"{BATCH_LIMIT} (multipart/json), answered as soon as one is available.",
            ),
            204: OpenApiResponse(
                description="Nothing arrived within the poll time (at most 8 s after the "
                "request arrived); the stream stays open."
            ),
            **problem_responses(**shared, **errors),
        },
        **kwargs,
    )


def stream_delete_schema(
    *, key_parameters: list[OpenApiParameter], errors: dict[str, str], **kwargs: Any
) -> Any:
    return extend_schema(
        parameters=[*key_parameters, ALLOW],
        responses={
            200: OpenApiResponse(
                {"type": "object", "additionalProperties": False, "maxProperties": 0},
                description="`{}`: the stream is closed, everything it handed out is "
                "acknowledged, nothing is requeued. A second DELETE answers the same.",
            ),
            **problem_responses(
                **errors,
                s401="not_authenticated: API_TOKEN is set and the bearer token is missing "
                "or wrong.",
                s404="stream_not_found: no stream of this key was ever given this id.",
                s405="method_not_allowed: see the Allow header.",
            ),
        },
        **kwargs,
    )


def bound_batches(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: a batch answer holds 1 to 10 items (X-3)."""
    for name, schema in result.get("components", {}).get("schemas", {}).items():
        if name.endswith("Answer"):
            for option in schema.get("oneOf", []):
                if option.get("type") == "array":
                    option.update(minItems=1, maxItems=BATCH_LIMIT)
    return result
