"""Prometheus metrics of the streams (exposed at ``/metrics`` with the others)."""

from __future__ import annotations

from prometheus_client import Counter

# Imported first: it sets up the multiprocess value class the counters below use.
from parley.core import metrics as _core_metrics  # noqa: F401

ANSWERS = Counter(
    "parley_stream_answers_total",
    "Answers of stream GETs by kind and status (200 with items, 204 without).",
    ["kind", "status"],
)
DELIVERED = Counter(
    "parley_stream_items_delivered_total",
    "Items handed out by streams, by kind.",
    ["kind"],
)
RELEASED = Counter(
    "parley_stream_items_released_total",
    "Claimed items made pending again because their answer never reached the client (L-4).",
    ["kind"],
)
