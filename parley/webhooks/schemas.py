"""The webhook payloads (W-1, W-2), declared once as msgspec structs.

msgspec decodes and validates the raw body in one pass, about a hundred times
cheaper than a DRF serializer (README, "Performance"); the same structs give
the OpenAPI components, so the documentation cannot drift from the parser.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec

from parley.core.errors import InvalidPayload

MESSAGE_MAX_LENGTH = 10_000

Content = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=MESSAGE_MAX_LENGTH,
        # At least one non-blank character, and no NUL: PostgreSQL text cannot hold it.
        pattern=r"^[^\x00]*[^\x00\s][^\x00]*$",
        description="The user's text: 1 to 10,000 characters, not blank, no NUL.",
    ),
]
Timestamp = Annotated[
    datetime,
    msgspec.Meta(
        description="ISO 8601 (RFC 3339) event time; without an offset it is UTC. Stored, "
        "never compared with the server clock (W-7).",
        extra_json_schema={"format": "date-time", "example": "2025-06-04T14:20:05Z"},
    ),
]


class ConversationRef(msgspec.Struct, frozen=True):
    id: UUID


class MessageData(msgspec.Struct, frozen=True):
    id: UUID
    conversation_id: UUID
    content: Content


class NewConversation(msgspec.Struct, frozen=True, tag_field="type", tag="NEW_CONVERSATION"):
    """Opens a conversation (W-4). Buffered messages for it are adopted (B-2)."""

    timestamp: Timestamp
    data: ConversationRef


class NewMessage(msgspec.Struct, frozen=True, tag_field="type", tag="NEW_MESSAGE"):
    """A user message (W-5). Grouped with its neighbours and answered once (G-1, G-2)."""

    timestamp: Timestamp
    data: MessageData


class CloseConversation(msgspec.Struct, frozen=True, tag_field="type", tag="CLOSE_CONVERSATION"):
    """Closes a conversation (W-6). A pending group is answered at once (G-5)."""

    timestamp: Timestamp
    data: ConversationRef


Event = NewConversation | NewMessage | CloseConversation
EVENT_TYPES = ("NEW_CONVERSATION", "NEW_MESSAGE", "CLOSE_CONVERSATION")

_decoder = msgspec.json.Decoder(Event)

# msgspec reports the first error as "<what> - at `$.data.id`", or
# "Object missing required field `x` - at `$.data`".
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`")
_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")


def _error_field(message: str) -> str:
    path = ""
    if at := _AT.search(message):
        path = at["path"].lstrip(".")
        message = message[: at.start()]
    if missing := _MISSING.match(message):
        path = f"{path}.{missing['field']}" if path else missing["field"]
    return path or "non_field_errors"


def _human(message: str) -> str:
    message = _AT.sub("", message)
    if message.startswith("Invalid value") and "type" in message:
        return f"{message}; expected one of {', '.join(EVENT_TYPES)}."
    if "matching regex" in message:
        return "Must contain a non-blank character and no NUL characters."
    return message if message.endswith(".") else f"{message}."


def parse_event(body: bytes) -> Event:
    """Decode and validate a webhook body, or raise InvalidPayload (400)."""
    try:
        event = _decoder.decode(body)
    except msgspec.ValidationError as exc:
        message = str(exc)
        field = _error_field(message)
        if field == "type" and message.startswith("Invalid value"):
            message = f"Unknown event type; expected one of {', '.join(EVENT_TYPES)}"
        raise InvalidPayload(
            "The payload failed validation.", errors={field: [_human(message)]}
        ) from exc
    # msgspec raises UnicodeDecodeError, not DecodeError, for a body that is not UTF-8.
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise InvalidPayload(
            "The body is not valid JSON.", errors={"non_field_errors": [_human(str(exc))]}
        ) from exc
    if event.timestamp.tzinfo is None:
        # W-1: a timestamp without an offset is UTC.
        event = msgspec.structs.replace(event, timestamp=event.timestamp.replace(tzinfo=UTC))
    elif event.timestamp.utcoffset():
        # Stored in UTC: PostgreSQL refuses offsets beyond 15:59 (RFC 3339 allows
        # 23:59), and 0001-01-01T00:00:00+01:00 has no UTC time at all.
        try:
            event = msgspec.structs.replace(event, timestamp=event.timestamp.astimezone(UTC))
        except OverflowError as exc:
            raise InvalidPayload(
                "The payload failed validation.",
                errors={"timestamp": ["Out of range: the UTC time must lie in years 1 to 9999."]},
            ) from exc
    return event


def openapi_components() -> dict[str, Any]:
    """OpenAPI component schemas for the three events, from the structs themselves."""
    _, components = msgspec.json.schema_components(
        [NewConversation, NewMessage, CloseConversation],
        ref_template="#/components/schemas/{name}",
    )
    return components
