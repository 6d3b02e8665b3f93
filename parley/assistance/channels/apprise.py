"""``apprise``: any Apprise URL, for the long tail (A-4). Config ``{"url"}``.

Teams (``workflows://``), Telegram (``tgram://``), Discord, ntfy, Matrix...:
one URL, and Apprise speaks the service's protocol. Apprise's own retries
and throttling sleep inside the process, so both are turned off on every
instance: the engine owns retries and rate limits (A-7, A-10). Apprise
reports success or failure without the service's answer, so a failure is
retried and ends FAILED when the attempts run out; a URL that Apprise cannot
parse is refused on save.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from rest_framework import serializers

from parley.assistance.channels import ChannelKind, Notice, Outcome, register

# Apprise logs failures with details of the service, which may hold tokens.
logging.getLogger("apprise").setLevel(logging.CRITICAL)


def _service(url: str) -> Any:
    """The Apprise plugin instance for ``url``, or None when Apprise cannot parse it."""
    import apprise  # imported on use: it loads every plugin module

    return apprise.Apprise.instantiate(url, suppress_exceptions=True) or None


class AppriseUrlField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        value: str = super().to_internal_value(data)
        if _service(value) is None:
            raise serializers.ValidationError("Not a URL that Apprise supports.")
        return value


class AppriseConfig(serializers.Serializer):
    url = AppriseUrlField(max_length=2000, help_text="Any Apprise URL (a credential).")


@register
class AppriseKind(ChannelKind):
    name = "apprise"
    label = "Apprise URL (Teams, Telegram, Discord, ntfy, ...)"
    config_serializer = AppriseConfig
    secret_keys = ("url",)

    def send(self, notice: Notice, config: dict[str, Any]) -> Outcome:
        service = _service(config["url"])
        if service is None:
            return Outcome.permanent("Apprise cannot parse the channel's URL")
        timeout: float = settings.ASSISTANCE_TIMEOUT_SECONDS
        # No retries and no throttling in here: the engine owns both.
        service.retry = 0
        service.service_retry = 0
        service.request_rate_per_sec = 0
        service.socket_connect_timeout = min(3.0, timeout)
        service.socket_read_timeout = timeout
        try:
            ok = service.notify(body=f"{notice.text}\n\nRequest: {notice.key}", title=notice.title)
        except Exception as exc:
            return Outcome.retryable(f"Apprise raised {type(exc).__name__}")
        if ok:
            return Outcome.delivered()
        return Outcome.retryable("the Apprise service reported a failure")
