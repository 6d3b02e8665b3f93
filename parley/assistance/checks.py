"""System checks of the delivery engine's timings and secrets."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register
from rest_framework.exceptions import ValidationError


@register()
def assistance_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    from parley.assistance.channels.webhook import WebhookSecretField
    from parley.assistance.tasks import HARD_TIME_LIMIT

    errors = []
    if settings.ASSISTANCE_LEASE.total_seconds() <= HARD_TIME_LIMIT:
        errors.append(
            Error(
                f"ASSISTANCE_LEASE_SECONDS must exceed the delivery task's hard time limit "
                f"({HARD_TIME_LIMIT} s, from ASSISTANCE_TIMEOUT_SECONDS): a sweep would start a "
                "second send while the first may still run.",
                id="parley.assistance.E001",
            )
        )
    if settings.REPLY_WEBHOOK_SECRET:
        try:
            WebhookSecretField().to_internal_value(settings.REPLY_WEBHOOK_SECRET)
        except ValidationError:
            errors.append(
                Error(
                    "REPLY_WEBHOOK_SECRET must be whsec_ followed by 24 to 64 bytes of base64.",
                    id="parley.assistance.E002",
                )
            )
    return errors
