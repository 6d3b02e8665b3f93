"""Standard Webhooks signatures (S-1): HMAC-SHA256 over ``id.timestamp.raw-body``.

Verification uses the scheme's reference library (``standardwebhooks``): a
constant-time comparison, several space-separated signatures for key
rotation, and a 5-minute timestamp tolerance. It is required whenever
``WEBHOOK_SECRET`` is set and skipped otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

from django.conf import settings
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from parley.core.errors import InvalidSignature

SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


@cache
def _verifier(secret: str) -> Webhook:
    return Webhook(secret)


def verify_signature(headers: Mapping[str, str], body: bytes) -> None:
    """Raise InvalidSignature (401) unless the body is signed with WEBHOOK_SECRET."""
    secret: str = settings.WEBHOOK_SECRET
    if not secret:
        return
    signed = {name: headers.get(name, "") for name in SIGNATURE_HEADERS}
    try:
        _verifier(secret).verify(body, signed, json_parse=False)
    # The library raises ValueError (and its subclasses binascii.Error and
    # UnicodeDecodeError) for malformed signatures or bodies: still a 401.
    except (WebhookVerificationError, ValueError) as exc:
        raise InvalidSignature(f"Webhook signature rejected: {exc}") from exc
