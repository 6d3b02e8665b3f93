"""One pooled HTTP client per process, and how an HTTP answer becomes an Outcome.

The client is made on first use in each process (a Celery prefork child, a
gunicorn worker), never before a fork, and reused: connections to a channel
stay open between sends. It never retries and never follows redirects: the
engine owns retries (A-7), and a redirect of a webhook URL is a
configuration to fix, not to follow silently.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from django.conf import settings

from parley.assistance.channels import Outcome
from parley.assistance.redaction import describe, redact

# httpx logs every request's URL at INFO, and a webhook URL is a credential.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)

# Seconds to wait for a TCP (and TLS) connection; reads wait ASSISTANCE_TIMEOUT_SECONDS.
CONNECT_TIMEOUT_SECONDS = 3.0
# Answers that may succeed later; any other 4xx is permanent.
RETRYABLE_STATUSES = frozenset({408, 425, 429})
USER_AGENT = "Parley-Assistance/1"

_lock = threading.Lock()
_client: tuple[int, httpx.Client] | None = None


def client() -> httpx.Client:
    """This process's client (a new one after a fork)."""
    global _client
    with _lock:
        if _client is None or _client[0] != os.getpid():
            timeout: float = settings.ASSISTANCE_TIMEOUT_SECONDS
            _client = (
                os.getpid(),
                httpx.Client(
                    timeout=httpx.Timeout(timeout, connect=min(CONNECT_TIMEOUT_SECONDS, timeout)),
                    limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
                    follow_redirects=False,
                    headers={"User-Agent": USER_AGENT},
                ),
            )
        return _client[1]


def reset_client() -> None:
    """Forget the client (tests that change the timeout)."""
    global _client
    with _lock:
        if _client is not None:
            _client[1].close()
        _client = None


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def post(url: str, *, secrets: list[str], **kwargs: Any) -> Outcome:
    """POST and classify the answer (A-7): 2xx delivered; 408, 425, 429, 5xx, timeouts
    and connection errors retryable; any other answer permanent."""
    try:
        response = client().post(url, **kwargs)
    except httpx.TimeoutException as exc:
        return Outcome.retryable(f"timed out ({describe(exc, secrets)})")
    except httpx.TransportError as exc:  # refused, reset, DNS, TLS...
        return Outcome.retryable(describe(exc, secrets))
    except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError) as exc:
        return Outcome.permanent(describe(exc, secrets))
    return classify(response, secrets)


def classify(response: httpx.Response, secrets: list[str]) -> Outcome:
    code = response.status_code
    if 200 <= code < 300:
        return Outcome.delivered(code)
    # The body names the reason (Slack: "channel_not_found"); its start is enough.
    detail = redact(response.text[:200].strip(), secrets)
    error = f"HTTP {code}" + (f": {detail}" if detail else "")
    if code in RETRYABLE_STATUSES or code >= 500:
        return Outcome.retryable(
            error,
            status_code=code,
            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
        )
    return Outcome.permanent(error, status_code=code)
