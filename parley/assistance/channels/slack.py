"""``slack``: a Slack incoming webhook (A-4). Config ``{"url"}``.

Slack answers 200 ``ok``; 400 ``invalid_payload``, 403 ``action_prohibited``,
404 ``channel_not_found`` and 410 ``channel_is_archived`` are permanent; 429
carries ``Retry-After`` in seconds; 5xx are retried. Slack has no
deduplication of its own, so the request's id is in the text, and in an
``Idempotency-Key`` header for any proxy that honours one (A-6). Slack
allows about one message a second per webhook, with short bursts: the
default rate limit (A-10).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers

from parley.assistance.channels import ChannelKind, Notice, Outcome, _http, register


class HttpUrlField(serializers.URLField):
    default_error_messages = {"invalid": "Enter an http or https URL."}

    def to_internal_value(self, data: Any) -> str:
        value: str = super().to_internal_value(data)
        if not value.lower().startswith(("http://", "https://")):
            self.fail("invalid")
        return value


class SlackConfig(serializers.Serializer):
    url = HttpUrlField(max_length=2000, help_text="The incoming webhook URL (a credential).")


def escape(text: str) -> str:
    """Slack's mrkdwn control characters, escaped as Slack asks."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@register
class Slack(ChannelKind):
    name = "slack"
    label = "Slack incoming webhook"
    config_serializer = SlackConfig
    secret_keys = ("url",)
    rate_per_second = 1.0
    burst = 3

    def default_config(self) -> dict[str, Any]:
        url: str = settings.ASSISTANCE_SLACK_WEBHOOK_URL
        return {"url": url} if url else {}

    def send(self, notice: Notice, config: dict[str, Any]) -> Outcome:
        text = f"*{escape(notice.title)}*\n{escape(notice.text)}\nRequest: `{notice.key}`"
        return _http.post(
            config["url"],
            secrets=self.secrets(config),
            json={"text": text},
            headers={"Idempotency-Key": notice.key, **notice.headers},
        )
