"""Output representations (R-1, T-3), shared by the read API and the webhook's 201/200 bodies."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from parley.conversations.models import Conversation, Message


class MessageOutput(serializers.Serializer):
    id = serializers.UUIDField()
    type = serializers.ChoiceField(choices=Message.Type.choices)
    content = serializers.CharField()
    timestamp = serializers.DateTimeField(
        help_text="Event time (INBOUND) or write time (OUTBOUND), UTC."
    )
    external_id = serializers.CharField(
        required=False,
        help_text="Only for a message whose producer's id was not a UUID (Q-2): that id.",
    )

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data: dict[str, Any] = super().to_representation(instance)
        # T-3: the key is there only for messages that came with a non-UUID id.
        if data.get("external_id") is None:
            data.pop("external_id", None)
        return data


class ConversationSummaryOutput(serializers.Serializer):
    """T-3's fields without the messages: R-1's first four, then the additions, in order."""

    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=Conversation.Status.choices)
    created_at = serializers.DateTimeField(help_text="Server time, UTC.")
    updated_at = serializers.DateTimeField(
        help_text="Server time; moves on every message and on close."
    )
    tenant_id = serializers.UUIDField()
    channel_uuid = serializers.CharField(allow_null=True, help_text="Seed envelope key (Q-2).")
    contact_urn = serializers.CharField(allow_null=True, help_text="Seed envelope key (Q-2).")
    closed_at = serializers.DateTimeField(allow_null=True)
    close_reason = serializers.ChoiceField(
        choices=Conversation.CloseReason.choices, allow_null=True
    )
    csat = serializers.IntegerField(allow_null=True, help_text="Latest CSAT, 1 to 5 (Q-3).")
    nps = serializers.IntegerField(allow_null=True, help_text="Latest NPS, 0 to 10 (Q-3).")
    archived_at = serializers.DateTimeField(
        allow_null=True, help_text="When the transcript was archived (T-5)."
    )
    transcript_sha256 = serializers.CharField(allow_null=True)


class ConversationOutput(ConversationSummaryOutput):
    """R-1's five fields first, then T-3's additions in their order."""

    messages = MessageOutput(many=True, help_text="Ordered by timestamp, then by arrival.")

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data: dict[str, Any] = super().to_representation(instance)
        head = ("id", "status", "created_at", "updated_at", "messages")
        return {**{key: data[key] for key in head}, **data}
