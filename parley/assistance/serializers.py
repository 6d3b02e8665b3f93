"""The assistance API's payloads: what it reads and how it shows requests, topics and channels.

A channel's config is write-only (A-9): it is in the input serializer and in
no output serializer, so no representation and no schema can carry it.
"""

from __future__ import annotations

import re
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from parley.assistance import channels
from parley.assistance.models import Attempt, Channel, Delivery

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
SLUG_PATTERN = r"^\s*[A-Za-z0-9][A-Za-z0-9_-]{0,99}\s*$"


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL: refused, never a 500.
    if "\x00" in value:
        raise serializers.ValidationError("NUL characters are not allowed.")
    return value


class StrictCharField(serializers.CharField):
    """A string, and only a string: DRF's CharField would turn 12 into "12"."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


class StrictRegexField(serializers.RegexField):
    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


class StrictUUIDField(serializers.UUIDField):
    """A UUID in a JSON string: DRF's UUIDField would take the integer 12 too."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """true or false: DRF's BooleanField would take "yes", 1 and "0" too."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictFloatField(serializers.FloatField):
    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return float(super().to_internal_value(data))


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return int(super().to_internal_value(data))


class ChannelNameField(serializers.SlugRelatedField):
    """A channel by its name. A string that cannot be a name is not looked up: it is not
    found (and text with NUL would not even reach PostgreSQL, which refuses it)."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str) or not re.fullmatch(NAME_PATTERN, data):
            self.fail("does_not_exist", slug_name=self.slug_field, value=str(data)[:100])
        return super().to_internal_value(data)


class RequestInput(serializers.Serializer):
    """The POST body as the OpenAPI schema shows it; ``body.parse_request`` reads it (msgspec)."""

    topic = StrictCharField(max_length=100, trim_whitespace=False)
    description = StrictCharField(min_length=1, max_length=5000, trim_whitespace=False)
    conversation_id = StrictUUIDField(required=False, allow_null=True)
    metadata = serializers.DictField(
        required=False, allow_null=True, help_text="Any JSON object, up to 16 KiB."
    )


class ChannelRefOutput(serializers.Serializer):
    kind = serializers.CharField()
    name = serializers.CharField()


class RequestOutput(serializers.Serializer):
    """A-1's representation, in its order."""

    id = serializers.UUIDField()
    topic = serializers.CharField()
    channel = serializers.SerializerMethodField()
    status = serializers.ChoiceField(choices=Delivery.Status.choices)
    attempts = serializers.IntegerField()
    max_attempts = serializers.IntegerField()
    last_error = serializers.CharField(
        allow_null=True, help_text="The latest failure, redacted; kept after a later success."
    )
    next_attempt_at = serializers.DateTimeField(
        allow_null=True,
        help_text="When the next attempt is due; while one runs, when it would be retried "
        "if its runner died.",
    )
    sent_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    @extend_schema_field(ChannelRefOutput)
    def get_channel(self, delivery: Delivery) -> dict[str, str]:
        channel = delivery.channel
        assert channel is not None
        return {"kind": channel.kind, "name": channel.name}


class AttemptOutput(serializers.ModelSerializer):
    class Meta:
        model = Attempt
        fields = ["n", "started_at", "ended_at", "outcome", "status_code", "error"]


class RequestDetailOutput(RequestOutput):
    history = AttemptOutput(many=True, help_text="One entry per attempt, oldest first.")


class ChannelInput(serializers.Serializer):
    name = StrictRegexField(NAME_PATTERN, max_length=100)
    kind = serializers.ChoiceField(choices=channels.choices())
    config = serializers.DictField(
        required=False,
        help_text="Write-only. slack {url}; email {to: [addresses]}; webhook {url, secret}; "
        "apprise {url}. {} reads the environment's defaults.",
    )
    active = StrictBooleanField(required=False, default=True)
    rate_per_second = StrictFloatField(
        required=False,
        allow_null=True,
        min_value=0,
        max_value=10_000,
        help_text="Shared send rate; null: the kind's default; 0: no limit.",
    )
    burst = StrictIntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=10_000,
        help_text="Sends allowed at once before the rate applies; null: the kind's default.",
    )


class ChannelOutput(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.CharField()
    active = serializers.BooleanField()
    configured = serializers.SerializerMethodField(
        help_text="Whether it has a config, its own or the environment's (never shown)."
    )
    rate_per_second = serializers.FloatField(allow_null=True)
    burst = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_configured(self, channel: Channel) -> bool:
        if channel.kind not in channels.KINDS:
            return False
        return bool(channels.get(channel.kind).resolve(channel.config))


class TopicInput(serializers.Serializer):
    slug = StrictRegexField(
        SLUG_PATTERN, max_length=110, help_text="Matched trimmed and case-insensitively."
    )
    name = StrictCharField(max_length=200)
    channel = ChannelNameField(slug_field="name", queryset=Channel.objects.all())
    active = StrictBooleanField(required=False, default=True)

    def validate_name(self, value: str) -> str:
        return _no_nul(value)


class TopicOutput(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    channel = serializers.CharField(source="channel.name")
    active = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


_time = serializers.DateTimeField().to_representation


def render_request(delivery: Delivery) -> dict[str, Any]:
    """RequestOutput's representation, built directly: the POST's hot path.

    A serializer instance costs a deep copy of its fields on every request;
    ``test_render_request_matches_the_serializer`` holds the two equal.
    """
    channel = delivery.channel
    assert channel is not None
    return {
        "id": str(delivery.id),
        "topic": delivery.topic,
        "channel": {"kind": channel.kind, "name": channel.name},
        "status": delivery.status,
        "attempts": delivery.attempts,
        "max_attempts": delivery.max_attempts,
        "last_error": delivery.last_error,
        "next_attempt_at": _time(delivery.next_attempt_at) if delivery.next_attempt_at else None,
        "sent_at": _time(delivery.sent_at) if delivery.sent_at else None,
        "created_at": _time(delivery.created_at),
        "updated_at": _time(delivery.updated_at),
    }
