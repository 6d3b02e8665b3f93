"""One event, one effect: the dispatch shared by ``POST /webhook/`` and the queue consumer.

The queue consumer (``parley.intake``) applies exactly the bodies the webhook
takes, through the same services, so the two cannot drift apart (Q-4).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.utils import timezone
from rest_framework import status

from parley.conversations import selectors, services
from parley.conversations.serializers import ConversationOutput
from parley.conversations.services.envelope import (
    conversation_of_contact,
    envelope_message_store,
)
from parley.core.errors import InvalidPayload
from parley.surveys.rules import SURVEY_KEYS
from parley.surveys.services import survey_record
from parley.webhooks.schemas import (
    AnyEvent,
    CloseConversation,
    MessageReceived,
    MessageSent,
    NewConversation,
    NewMessage,
    SurveyResponse,
    envelope_time,
)


@dataclass(frozen=True)
class Applied:
    """What an event came to: the HTTP answer, and the result the metrics count."""

    body: dict[str, Any]
    status: int
    result: str
    conversation_id: uuid.UUID | None


def event_type(event: AnyEvent) -> str:
    return str(type(event).__struct_config__.tag)


def event_id(event: AnyEvent) -> str:
    """The id the inbox deduplicates on (Q-6).

    The envelope's ``correlation_id``; for Parley's events ``type:data.id``, so
    a redelivered NEW_CONVERSATION is a no-op and each conversation's CLOSE is
    an event of its own.
    """
    if isinstance(event, MessageReceived | MessageSent):
        return event.correlation_id
    return f"{event_type(event)}:{event.data.id}"


def event_key(event: AnyEvent) -> str:
    """The conversation key: the order unit of the queues (Q-4, Q-5).

    The conversation id, or ``project_uuid:channel_uuid:contact_urn`` for the
    seed's envelope (the seed's producer uses the same MessageGroupId).
    """
    if isinstance(event, MessageReceived | MessageSent):
        data = event.data
        return f"{data.project_uuid}:{data.channel_uuid}:{data.contact_urn}"
    if isinstance(event, NewMessage | SurveyResponse):
        return str(event.data.conversation_id)
    return str(event.data.id)


def event_apply(event: AnyEvent) -> Applied:
    """Run the event's service. Raises ParleyError for the refusals (the HTTP 400s)."""
    if isinstance(event, NewMessage):
        ingested = services.message_ingest(
            message_id=event.data.id,
            conversation_id=event.data.conversation_id,
            content=event.data.content,
            timestamp=event.timestamp,
        )
        body = {
            "id": str(ingested.id),
            "conversation_id": str(ingested.conversation_id),
            "status": ingested.status,
        }
        result = "replay" if ingested.replay else ingested.status
        return Applied(body, status.HTTP_202_ACCEPTED, result, ingested.conversation_id)
    if isinstance(event, MessageReceived | MessageSent):
        return _apply_envelope(event)
    if isinstance(event, NewConversation):
        services.conversation_open(conversation_id=event.data.id, tenant_id=event.data.tenant_id)
        body = _representation(event.data.id)
        return Applied(body, status.HTTP_201_CREATED, "created", event.data.id)
    if isinstance(event, SurveyResponse):
        recorded = survey_record(
            survey_id=event.data.id,
            event_id=event_id(event),
            conversation_id=event.data.conversation_id,
            kind=event.data.kind,
            raw_score=event.data.score,
            responded_at=event.timestamp,
        )
        return _survey_applied(recorded.id, recorded.conversation_id, recorded.replay)
    assert isinstance(event, CloseConversation)
    services.conversation_close(conversation_id=event.data.id)
    return Applied(_representation(event.data.id), status.HTTP_200_OK, "closed", event.data.id)


def _apply_envelope(event: MessageReceived | MessageSent) -> Applied:
    data = event.data
    if isinstance(event, MessageReceived) and data.key in SURVEY_KEYS:
        # a survey answer rides on a message.received; its message is a dummy.
        conversation_id = conversation_of_contact(
            tenant_id=data.project_uuid,
            channel_uuid=data.channel_uuid,
            contact_urn=data.contact_urn,
        )
        created_at = data.message.created_at if data.message else ""
        recorded = survey_record(
            survey_id=uuid.uuid5(data.project_uuid, f"survey:{event.correlation_id}"),
            event_id=event.correlation_id,
            conversation_id=conversation_id,
            kind=SURVEY_KEYS[data.key],
            raw_score=data.value,
            responded_at=envelope_time(created_at) or timezone.now(),
            score_field="data.value",
        )
        return _survey_applied(recorded.id, recorded.conversation_id, recorded.replay)
    message = data.message
    if message is None:
        raise InvalidPayload(
            "The payload failed validation.",
            errors={"data.message": ["Object missing required field `message`."]},
        )
    if not message.text.strip() or "\x00" in message.text:
        raise InvalidPayload(
            "The payload failed validation.",
            errors={"data.message.text": ["Must contain a non-blank character and no NUL."]},
        )
    stored = envelope_message_store(
        direction="received" if isinstance(event, MessageReceived) else "sent",
        tenant_id=data.project_uuid,
        channel_uuid=data.channel_uuid,
        contact_urn=data.contact_urn,
        producer_id=message.id,
        content=message.text,
        timestamp=envelope_time(message.created_at),
    )
    body = {
        "id": str(stored.id),
        "conversation_id": str(stored.conversation_id),
        "status": stored.status,
    }
    result = "replay" if stored.replay else stored.status
    return Applied(body, status.HTTP_202_ACCEPTED, result, stored.conversation_id)


def _survey_applied(survey_id: uuid.UUID, conversation_id: uuid.UUID, replay: bool) -> Applied:
    body = {"id": str(survey_id), "conversation_id": str(conversation_id), "status": "recorded"}
    return Applied(body, status.HTTP_202_ACCEPTED, "replay" if replay else "recorded", None)


def _representation(conversation_id: Any) -> dict[str, Any]:
    conversation = selectors.conversation_with_messages(conversation_id=conversation_id)
    return dict(ConversationOutput(conversation).data)
