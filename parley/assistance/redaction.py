"""Redaction of every error that is stored or logged (A-9).

HTTP libraries put the URL in their messages ("... for url: https://hooks.
slack.com/services/T0/B0/XXXX"), and for a Slack webhook or most Apprise
URLs the URL *is* the credential. So every URL keeps only its scheme, and
every known secret (the channel's config values, the SMTP password) is cut
out wherever it appears, whole or percent-encoded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote

MAX_ERROR_LENGTH = 500
REDACTED = "[redacted]"
_URL = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.\-]{1,20})://[^\s'\"<>]+")
# Shorter values are not worth hiding and would shred ordinary text.
_MIN_SECRET_LENGTH = 6


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without URLs or any of ``secrets``, at most MAX_ERROR_LENGTH characters."""
    for secret in sorted({s for s in secrets if s and len(s) >= _MIN_SECRET_LENGTH}, key=len)[::-1]:
        for form in {secret, quote(secret, safe=""), quote(secret)}:
            text = text.replace(form, REDACTED)
    text = _URL.sub(lambda match: f"{match.group(1)}://{REDACTED}", text)
    if len(text) > MAX_ERROR_LENGTH:
        text = text[: MAX_ERROR_LENGTH - 1] + "…"
    return text


def describe(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """An exception as ``Type: message``, redacted."""
    message = str(exc)
    name = type(exc).__name__
    return redact(f"{name}: {message}" if message else name, secrets)
