"""The webhook payloads (W-1, W-2), declared once as msgspec structs.

msgspec decodes and validates the raw body in one pass, about a hundred times
cheaper than a DRF serializer (README, "Performance"); the same structs give
the OpenAPI components, so the documentation cannot drift from the parser.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
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


class NewConversationData(msgspec.Struct, frozen=True):
    id: UUID
    tenant_id: Annotated[
        UUID | None,
        msgspec.Meta(description="Owner (Q-1); unknown tenants are created with the defaults."),
    ] = None


class MessageData(msgspec.Struct, frozen=True):
    id: UUID
    conversation_id: UUID
    content: Content


class NewConversation(msgspec.Struct, frozen=True, tag_field="type", tag="NEW_CONVERSATION"):
    """Opens a conversation (W-4). Buffered messages for it are adopted (B-2)."""

    timestamp: Timestamp
    data: NewConversationData


class NewMessage(msgspec.Struct, frozen=True, tag_field="type", tag="NEW_MESSAGE"):
    """A user message (W-5). Grouped with its neighbours and answered once (G-1, G-2)."""

    timestamp: Timestamp
    data: MessageData


class CloseConversation(msgspec.Struct, frozen=True, tag_field="type", tag="CLOSE_CONVERSATION"):
    """Closes a conversation (W-6). A pending group is answered at once (G-5)."""

    timestamp: Timestamp
    data: ConversationRef


Score = Annotated[
    Any,
    msgspec.Meta(
        description="CSAT 1 to 5 or NPS 0 to 10, as an integer or a numeric string (Q-3).",
        extra_json_schema={"oneOf": [{"type": "integer"}, {"type": "string"}]},
    ),
]


class SurveyData(msgspec.Struct, frozen=True):
    id: UUID
    conversation_id: UUID
    kind: Literal["CSAT", "NPS"]
    score: Score = None


class SurveyResponse(msgspec.Struct, frozen=True, tag_field="type", tag="SURVEY_RESPONSE"):
    """A CSAT or NPS answer (Q-3). A repeated id is a no-op; a newer answer replaces the score."""

    timestamp: Timestamp
    data: SurveyData


Event = NewConversation | NewMessage | CloseConversation | SurveyResponse
EVENT_TYPES = ("NEW_CONVERSATION", "NEW_MESSAGE", "CLOSE_CONVERSATION", "SURVEY_RESPONSE")

# --- The seed's envelope (Q-2) -----------------------------------------------------

Key = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=255, pattern=r"^[^\x00]*[^\x00\s][^\x00]*$"),
]


class EnvelopeMessage(msgspec.Struct, frozen=True):
    id: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=255,
            pattern=r"^[^\x00]*[^\x00\s][^\x00]*$",
            description="The producer's id. A UUID is kept; anything else becomes "
            "uuid5(project_uuid, id), with the original as external_id.",
        ),
    ]
    text: Annotated[str, msgspec.Meta(max_length=MESSAGE_MAX_LENGTH)]
    created_at: Annotated[
        str,
        msgspec.Meta(
            description="ISO 8601 message time; without an offset it is UTC; empty: the "
            "arrival time."
        ),
    ]
    source: str | None = None
    contact_name: str | None = None


class EnvelopeData(msgspec.Struct, frozen=True):
    project_uuid: Annotated[UUID, msgspec.Meta(description="The tenant id (Q-1).")]
    contact_urn: Key
    channel_uuid: Key
    message: EnvelopeMessage | None = None
    key: str | None = None
    value: Score = None


class MessageReceived(msgspec.Struct, frozen=True, tag_field="event_type", tag="message.received"):
    """The seed's incoming message (Q-2): grouped and answered like NEW_MESSAGE.

    With ``key`` ``weni_csat`` or ``weni_nps`` it is a survey answer instead (Q-3).
    """

    correlation_id: Key
    data: EnvelopeData


class MessageSent(msgspec.Struct, frozen=True, tag_field="event_type", tag="message.sent"):
    """The seed's outgoing message (Q-2): an agent's OUTBOUND, stored, never answered."""

    correlation_id: Key
    data: EnvelopeData


Envelope = MessageReceived | MessageSent
ENVELOPE_TYPES = ("message.received", "message.sent")
AnyEvent = Event | Envelope

_decoder = msgspec.json.Decoder(Event)
_envelope_decoder = msgspec.json.Decoder(Envelope)
_datetime_decoder = msgspec.json.Decoder(datetime)


class UnparsableBody(InvalidPayload):
    """Not JSON, or not UTF-8. A dead letter on a queue gets the code ``invalid_json``."""

    intake_code = "invalid_json"


class UnknownEventType(InvalidPayload):
    """A ``type`` or ``event_type`` Parley does not know: ``unknown_type`` on a queue."""

    intake_code = "unknown_type"


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
    if "matching regex" in message:
        return "Must contain a non-blank character and no NUL characters."
    return message if message.endswith(".") else f"{message}."


def _validation_error(exc: msgspec.ValidationError, types: tuple[str, ...]) -> InvalidPayload:
    message = str(exc)
    field = _error_field(message)
    if field in ("type", "event_type") and message.startswith("Invalid value"):
        return UnknownEventType(
            "The payload failed validation.",
            errors={field: [f"Unknown event type; expected one of {', '.join(types)}."]},
        )
    return InvalidPayload("The payload failed validation.", errors={field: [_human(message)]})


def parse_event(body: bytes) -> AnyEvent:
    """Decode and validate a webhook body (either envelope), or raise InvalidPayload (400).

    Parley's own events are tried first (the hot path pays nothing for the
    seed's envelope); a body without ``type`` is then read as the envelope.
    """
    try:
        return _normalise(_decoder.decode(body))
    except msgspec.ValidationError as exc:
        _require_utf8(body)
        if _error_field(str(exc)) != "type" or not _MISSING.match(str(exc)):
            raise _validation_error(exc, EVENT_TYPES) from exc
        native_error = exc
    # msgspec raises UnicodeDecodeError, not DecodeError, for a body that is not UTF-8.
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise UnparsableBody(
            "The body is not valid JSON.", errors={"non_field_errors": [_human(str(exc))]}
        ) from exc
    try:
        return _envelope_decoder.decode(body)
    except msgspec.ValidationError as exc:
        if _error_field(str(exc)) == "event_type" and _MISSING.match(str(exc)):
            raise InvalidPayload(
                "The payload failed validation.",
                errors={
                    "type": [
                        "Object missing required field `type` (Parley's events: "
                        f"{', '.join(EVENT_TYPES)}) or `event_type` (the seed's envelope: "
                        f"{', '.join(ENVELOPE_TYPES)})."
                    ]
                },
            ) from native_error
        raise _validation_error(exc, ENVELOPE_TYPES) from exc


def _require_utf8(body: bytes) -> None:
    """msgspec stops at the first schema error, before it has read every string: a
    body that is not UTF-8 must be called so, whatever else is wrong with it."""
    try:
        body.decode()
    except UnicodeDecodeError as exc:
        raise UnparsableBody(
            "The body is not valid JSON.",
            errors={"non_field_errors": [f"Not UTF-8: {exc.reason} at byte {exc.start}."]},
        ) from exc


def to_utc(moment: datetime, field: str) -> datetime:
    """W-1: no offset is UTC; stored in UTC, refused when the UTC time is out of range."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    if not moment.utcoffset():
        return moment
    # PostgreSQL refuses offsets beyond 15:59 (RFC 3339 allows 23:59), and
    # 0001-01-01T00:00:00+01:00 has no UTC time at all.
    try:
        return moment.astimezone(UTC)
    except OverflowError as exc:
        raise InvalidPayload(
            "The payload failed validation.",
            errors={field: ["Out of range: the UTC time must lie in years 1 to 9999."]},
        ) from exc


def _normalise(event: Event) -> Event:
    return msgspec.structs.replace(event, timestamp=to_utc(event.timestamp, "timestamp"))


def envelope_time(created_at: str) -> datetime | None:
    """The envelope's ``message.created_at``: None when empty (the arrival time is used)."""
    if not created_at.strip():
        return None
    try:
        moment = _datetime_decoder.decode(msgspec.json.encode(created_at.strip()))
    except msgspec.ValidationError as exc:
        raise InvalidPayload(
            "The payload failed validation.",
            errors={"data.message.created_at": [f"{_human(str(exc))} Expected ISO 8601."]},
        ) from exc
    return to_utc(moment, "data.message.created_at")


def _openapi_3_0(schema: Any) -> Any:
    """msgspec writes JSON Schema: ``anyOf [X, {type: null}]`` becomes OpenAPI 3.0's nullable."""
    if isinstance(schema, list):
        return [_openapi_3_0(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    schema = {key: _openapi_3_0(value) for key, value in schema.items()}
    options = schema.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        rest = [option for option in options if option != {"type": "null"}]
        del schema["anyOf"]
        if len(rest) == 1 and "$ref" not in rest[0]:
            schema.update(rest[0])
        else:
            schema["anyOf"] = rest
        schema["nullable"] = True
    return schema


def openapi_components() -> dict[str, Any]:
    """OpenAPI component schemas for the three events, from the structs themselves."""
    _, components = msgspec.json.schema_components(
        [
            NewConversation,
            NewMessage,
            CloseConversation,
            SurveyResponse,
            MessageReceived,
            MessageSent,
        ],
        ref_template="#/components/schemas/{name}",
    )
    return {name: _openapi_3_0(schema) for name, schema in components.items()}
