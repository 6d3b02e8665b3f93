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
