"""Builders for webhook payloads in the shape of seed 000."""

from __future__ import annotations

import uuid
from typing import Any


def new_conversation(
    conversation_id: uuid.UUID | str, timestamp: str = "2025-06-04T14:20:00Z"
) -> dict[str, Any]:
    return {
        "type": "NEW_CONVERSATION",
        "timestamp": timestamp,
        "data": {"id": str(conversation_id)},
    }


def new_message(
    message_id: uuid.UUID | str,
    conversation_id: uuid.UUID | str,
    content: str = "Hi!",
    timestamp: str = "2025-06-04T14:20:05Z",
) -> dict[str, Any]:
    return {
        "type": "NEW_MESSAGE",
        "timestamp": timestamp,
        "data": {
            "id": str(message_id),
            "content": content,
            "conversation_id": str(conversation_id),
        },
    }


def close_conversation(
    conversation_id: uuid.UUID | str, timestamp: str = "2025-06-04T14:25:00Z"
) -> dict[str, Any]:
    return {
        "type": "CLOSE_CONVERSATION",
        "timestamp": timestamp,
        "data": {"id": str(conversation_id)},
    }


def new_conversation_for(
    conversation_id: uuid.UUID | str, tenant_id: uuid.UUID | str
) -> dict[str, Any]:
    payload = new_conversation(conversation_id)
    payload["data"]["tenant_id"] = str(tenant_id)
    return payload


def envelope(
    event_type: str = "message.received",
    *,
    correlation_id: str | None = None,
    project_uuid: uuid.UUID | str = "1c9d4f1e-7a2b-4c3d-9e8f-0a1b2c3d4e5f",
    contact_urn: str = "whatsapp:5511999990000",
    channel_uuid: str = "8e2b6c1a-4d3f-4b5a-9c7d-6e5f4a3b2c1d",
    message_id: str | None = None,
    text: str = "Hi!",
    created_at: str = "2025-06-04T14:20:05Z",
    **data: Any,
) -> dict[str, Any]:
    """The seed 001 envelope (SPEC Q-2)."""
    return {
        "event_type": event_type,
        "correlation_id": correlation_id or str(uuid.uuid4()),
        "data": {
            "project_uuid": str(project_uuid),
            "contact_urn": contact_urn,
            "channel_uuid": channel_uuid,
            "message": {
                "id": message_id or str(uuid.uuid4()),
                "text": text,
                "source": "incoming" if event_type == "message.received" else "outgoing",
                "created_at": created_at,
                "contact_name": "Ana",
            },
            **data,
        },
    }


def survey(
    conversation_id: uuid.UUID | str,
    kind: str,
    score: Any,
    *,
    survey_id: uuid.UUID | str | None = None,
    timestamp: str = "2025-06-04T14:30:00Z",
) -> dict[str, Any]:
    """The native SURVEY_RESPONSE event (SPEC Q-3)."""
    return {
        "type": "SURVEY_RESPONSE",
        "timestamp": timestamp,
        "data": {
            "id": str(survey_id or uuid.uuid4()),
            "conversation_id": str(conversation_id),
            "kind": kind,
            "score": score,
        },
    }
