"""Prometheus metrics of the queue consumer (O-3), summed by ``/metrics`` with the rest."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

import parley.core.metrics  # noqa: F401  (sets the multiprocess value class first)

EVENTS = Counter(
    "parley_intake_events_total",
    "Queued events by source broker and outcome: applied, duplicate (already in the inbox), "
    "dead_lettered, redelivered (a delivery the broker or the consumer made again).",
    ["source", "outcome"],
)
LAG = Gauge(
    "parley_intake_lag_messages",
    "Messages waiting in each queue or partition, where the broker reports it.",
    ["source", "queue"],
    multiprocess_mode="livemax",
)
BATCH_SIZE = Histogram(
    "parley_intake_batch_size_events",
    "Events applied in one transaction.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200),
)
BATCH_SECONDS = Histogram(
    "parley_intake_batch_duration_seconds",
    "Time to apply and commit one batch.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
)
