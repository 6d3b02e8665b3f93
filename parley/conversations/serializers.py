"""Output representations (R-1), shared by the read API and the webhook's 201/200 bodies."""

from __future__ import annotations

from rest_framework import serializers

from parley.conversations.models import Conversation, Message


class MessageOutput(serializers.Serializer):
    id = serializers.UUIDField()
    type = serializers.ChoiceField(choices=Message.Type.choices)
    content = serializers.CharField()
    timestamp = serializers.DateTimeField(
        help_text="Event time (INBOUND) or write time (OUTBOUND), UTC."
    )


class ConversationOutput(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=Conversation.Status.choices)
    created_at = serializers.DateTimeField(help_text="Server time, UTC.")
    updated_at = serializers.DateTimeField(
        help_text="Server time; moves on every message and on close."
    )
    messages = MessageOutput(many=True, help_text="Ordered by timestamp, then by arrival.")
