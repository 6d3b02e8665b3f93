"""Prometheus metrics of the delivery engine (summed with the others at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

ATTEMPTS = Counter(
    "parley_assistance_attempts_total",
    "Delivery attempts by purpose, channel kind and outcome (delivered, retryable, permanent).",
    ["purpose", "kind", "outcome"],
)
DEFERRED = Counter(
    "parley_assistance_deferred_total",
    "Sends put off by a channel's rate limit (A-10), by channel kind.",
    ["kind"],
)
SETTLED = Counter(
    "parley_assistance_settled_total",
    "Deliveries that ended, by purpose and final status (SENT, FAILED).",
    ["purpose", "status"],
)
TIME_TO_SENT = Histogram(
    "parley_assistance_time_to_sent_seconds",
    "From a delivery's creation to the channel's confirmation.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800, 7200),
)
