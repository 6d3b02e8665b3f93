"""Optional per-source rate limit for ``POST /webhook/``.

Off unless ``WEBHOOK_RATE_LIMIT`` is set, in DRF's rate syntax (``100/s``,
``6000/min``). Over the limit a request gets 429, problem+json code
``rate_limited``, with ``Retry-After``, before the body is read or the
signature checked, so a flood costs one cache round trip per request.

The source is the sender's credential when it sends one (``Authorization:
Bearer ...`` or ``Basic ...``; stored as a hash, never in clear), otherwise
the client address: ``REMOTE_ADDR``, or an ``X-Forwarded-For`` entry when DRF's
``NUM_PROXIES`` says how many proxies to trust. It never depends on the event,
so retries of one delivery (the same ``webhook-id``) count like any request.
Nothing checks that credential here, so a client can rotate it to dodge
the limit: this protects Parley from a runaway sender, not from an attacker,
whom a limit at the edge (the proxy or the load balancer) must stop.

Counting is a fixed window in Django's cache: ``add`` creates the window's
counter, ``incr`` bumps it. Both are single atomic commands in Redis (``SET
NX`` and ``INCRBY``), so several gunicorn workers share one exact count; DRF's
``SimpleRateThrottle`` reads, edits and writes back a list, and concurrent
requests overwrite each other's hits. A fixed window lets a sender reach twice
the rate across a window boundary, which is acceptable for a safety limit.

When the cache fails (Redis down), requests are let through and a warning is
logged: the rate limit must not take the intake down with it.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from dataclasses import dataclass
from typing import Any

import structlog
from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from parley.core import metrics

log = structlog.get_logger(__name__)

_RATE = re.compile(r"(?P<count>[1-9][0-9]*)/(?P<period>s|sec|second|m|min|minute|h|hour|d|day)")
_PERIOD_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_CREDENTIAL_SCHEMES = ("bearer", "basic")
KEY_PREFIX = "ratelimit:webhook"


@dataclass(frozen=True)
class Rate:
    requests: int
    seconds: int


def parse_rate(rate: str) -> Rate:
    """``"100/s"`` → Rate(100, 1); ``"6000/min"`` → Rate(6000, 60)."""
    match = _RATE.fullmatch(rate.strip())
    if match is None:
        raise ImproperlyConfigured(
            f"Rate {rate!r}: expected N/s, N/min, N/hour or N/day (e.g. 100/s)."
        )
    return Rate(int(match["count"]), _PERIOD_SECONDS[match["period"][0]])


class WebhookRateThrottle(BaseThrottle):
    """A fixed-window counter per source, shared by every process through the cache."""

    cache_alias = "default"

    def __init__(self) -> None:
        limit: str = settings.WEBHOOK_RATE_LIMIT
        self.rate = parse_rate(limit) if limit else None
        self._wait: float | None = None

    def source(self, request: Request) -> str:
        """The sender: a hash of its credential if it sends one, else its address."""
        scheme, _, credential = request.headers.get("Authorization", "").strip().partition(" ")
        if scheme.lower() in _CREDENTIAL_SCHEMES and credential.strip():
            digest = hashlib.sha256(f"{scheme.lower()} {credential.strip()}".encode()).hexdigest()
            return f"credential:{digest[:32]}"
        return f"address:{self.get_ident(request) or 'unknown'}"

    def allow_request(self, request: Request, view: Any) -> bool:
        if self.rate is None:
            return True
        now = time.time()
        window = int(now // self.rate.seconds)
        key = f"{KEY_PREFIX}:{self.source(request)}:{window}"
        try:
            count = self._hit(key, timeout=self.rate.seconds + 1)
        except Exception as exc:  # the cache is down: let the request through
            log.warning("rate_limit_unavailable", error=f"{type(exc).__name__}: {exc}")
            return True
        if count <= self.rate.requests:
            return True
        self._wait = (window + 1) * self.rate.seconds - now
        metrics.EVENTS.labels(type="unknown", result="rate_limited").inc()
        return False

    def _hit(self, key: str, *, timeout: int) -> int:
        """Count one request in the window's counter and return the count."""
        cache = caches[self.cache_alias]
        # The counter outlives its window a little; the next window has its own key.
        cache.add(key, 0, timeout=timeout)
        try:
            return int(cache.incr(key))
        except ValueError:
            # It expired between add and incr: this request opens the window.
            cache.add(key, 1, timeout=timeout)
            return 1

    def wait(self) -> float | None:
        """Seconds until the window ends: DRF rounds it up into ``Retry-After``."""
        if self._wait is None:
            return None
        return max(1.0, float(math.ceil(self._wait)))
