"""``webhook``: a JSON POST signed with Standard Webhooks (A-4). Config ``{"url", "secret"}``.

The body is ``{"type": ..., "data": ...}``. ``webhook-id`` and
``Idempotency-Key`` are both the delivery's id on every attempt (A-6), so a
receiver deduplicates on either; ``webhook-signature`` is HMAC-SHA256 over
``id.timestamp.body`` with the channel's secret (``whsec_`` + base64, given
by the client), made by the scheme's reference library.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from rest_framework import serializers
from standardwebhooks.webhooks import Webhook as Signer

from parley.assistance.channels import ChannelKind, Notice, Outcome, _http, register
from parley.assistance.channels.slack import HttpUrlField


class WebhookSecretField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        value: str = super().to_internal_value(data)
        if not value.startswith("whsec_"):
            raise serializers.ValidationError("Expected whsec_ followed by base64.")
        try:
            raw = base64.b64decode(value[len("whsec_") :], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise serializers.ValidationError("Expected whsec_ followed by base64.") from exc
        if not 24 <= len(raw) <= 64:
            raise serializers.ValidationError("The secret must be 24 to 64 bytes.")
        return value


class WebhookConfig(serializers.Serializer):
    url = HttpUrlField(max_length=2000)
    secret = WebhookSecretField(max_length=200, help_text="whsec_ + base64, 24 to 64 bytes.")


def signed_post(url: str, secret: str | None, notice: Notice, secrets: list[str]) -> Outcome:
    """POST ``{"type", "data"}`` with the Standard Webhooks headers; unsigned without a secret."""
    body = json.dumps({"type": notice.type, "data": notice.data}, separators=(",", ":"))
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": notice.key,
        "webhook-id": notice.key,
        **notice.headers,
    }
    if secret:
        signer = Signer(secret)
        headers["webhook-timestamp"] = str(int(notice.sent_at.timestamp()))
        headers["webhook-signature"] = signer.sign(notice.key, notice.sent_at, body)
    return _http.post(url, secrets=secrets, content=body.encode(), headers=headers)


@register
class WebhookKind(ChannelKind):
    name = "webhook"
    label = "Webhook (Standard Webhooks signed JSON)"
    config_serializer = WebhookConfig
    secret_keys = ("url", "secret")

    def send(self, notice: Notice, config: dict[str, Any]) -> Outcome:
        return signed_post(config["url"], config.get("secret"), notice, self.secrets(config))
