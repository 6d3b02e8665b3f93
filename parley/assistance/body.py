"""The POST body of an assistance request, decoded and checked in one pass (msgspec).

The POST is the hot path (A-13): msgspec reads the raw bytes, which the
signature check has read already, for a fraction of a DRF serializer's cost.
``serializers.RequestInput`` describes the same body for the OpenAPI schema;
``test_api`` holds both to the same cases.
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from uuid import UUID

import msgspec

from parley.core.errors import InvalidPayload
from parley.webhooks.schemas import _error_field, _human

MAX_METADATA_BYTES = 16 * 1024
# Not blank, and no NUL (PostgreSQL text cannot hold one): as the webhook's content.
_TEXT = r"^[^\x00]*[^\x00\s][^\x00]*$"


class RequestBody(msgspec.Struct, frozen=True):
    topic: Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=_TEXT)]
    description: Annotated[str, msgspec.Meta(min_length=1, max_length=5000, pattern=_TEXT)]
    conversation_id: UUID | None = None
    metadata: dict[str, Any] | None = None


_decoder = msgspec.json.Decoder(RequestBody)


def parse_request(body: bytes) -> RequestBody:
    """Decode and check a POST body, or raise InvalidPayload (400) naming the field."""
    try:
        parsed = _decoder.decode(body)
    except msgspec.ValidationError as exc:
        message = str(exc)
        raise InvalidPayload(
            "The payload failed validation.", errors={_error_field(message): [_human(message)]}
        ) from exc
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise InvalidPayload(
            "The body is not valid JSON.", errors={"non_field_errors": [_human(str(exc))]}
        ) from exc
    if parsed.metadata:
        encoded = json.dumps(parsed.metadata)
        if "\\u0000" in encoded:
            raise InvalidPayload(
                "The payload failed validation.",
                errors={"metadata": ["NUL characters are not allowed."]},
            )
        if len(encoded.encode()) > MAX_METADATA_BYTES:
            raise InvalidPayload(
                "The payload failed validation.", errors={"metadata": ["At most 16 KiB of JSON."]}
            )
    return parsed
