"""Prometheus metrics (SPEC O-3), exposed at ``/metrics``.

With ``PROMETHEUS_MULTIPROC_DIR`` set, prometheus_client keeps each process's
samples in that folder and ``/metrics`` sums them, so several gunicorn
workers and the Celery worker (which writes the replies) report together. The
folder must be shared by those processes and emptied when the stack starts.
"""

from __future__ import annotations

import os
import socket

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.registry import Collector

# prometheus_client names each process's file by pid, and pids repeat across
# containers that share the folder (web and worker both have a pid 7): add
# the host name, which Docker sets per container, so they never collide.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    values.ValueClass = values.MultiProcessValue(
        process_identifier=lambda: f"{socket.gethostname()}_{os.getpid()}"
    )

EVENTS = Counter(
    "parley_webhook_events_total",
    "Webhook events by type and result (a status such as queued, or an error code).",
    ["type", "result"],
)
ORPHANS = Counter(
    "parley_orphan_messages_total",
    "Out-of-order messages: buffered, then adopted or expired.",
    ["outcome"],
)
GROUP_SIZE = Histogram(
    "parley_group_size_messages",
    "Number of INBOUND messages in a replied group.",
    buckets=(1, 2, 3, 4, 5, 7, 10, 20, 50),
)
REPLY_DELAY = Histogram(
    "parley_reply_delay_seconds",
    "From a group's last message arrival to its reply's commit.",
    buckets=(0.5, 1, 2, 3, 4, 5, 5.1, 5.25, 5.5, 6, 7, 10, 20, 30, 60),
)
SWEEP_DURATION = Histogram(
    "parley_sweep_duration_seconds",
    "How long a sweep took to answer the groups due when it ran. Near "
    "SWEEP_INTERVAL or above, replies queue: the writer is too slow for the load.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
TASK_FAILURES = Counter(
    "parley_task_failures_total",
    "Celery task runs that raised.",
    ["task"],
)

# Reply writers (G-8). With PROMETHEUS_MULTIPROC_DIR the gauge sums the calls
# in flight in every worker process: the writer concurrency reached.
REPLY_WRITER_CALLS = Counter(
    "parley_reply_writer_calls_total",
    "Calls of the reply writer, by result: ok, error (it raised or returned no text), timeout.",
    ["result"],
)
REPLY_WRITER_SECONDS = Histogram(
    "parley_reply_writer_seconds",
    "How long a call of the reply writer took.",
    buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60),
)
REPLY_WRITERS_ACTIVE = Gauge(
    "parley_reply_writers_active",
    "Calls of the reply writer in flight right now.",
    multiprocess_mode="livesum",
)
REPLY_RETRIES = Counter(
    "parley_reply_retries_total",
    "Writer failures after which the group is due again later (backoff).",
)
GROUPS_FAILED = Counter(
    "parley_groups_failed_total",
    "Groups marked FAILED after REPLY_MAX_ATTEMPTS failed attempts.",
)
GROUPS_RETRIED = Counter(
    "parley_groups_retried_total",
    "FAILED groups an operator sent back to the writer.",
)

LIVE_WAITERS = Gauge(
    "parley_live_waiters",
    "Requests of the live process waiting on a channel right now (long polls, streams).",
    ["channel"],
    multiprocess_mode="livesum",
)
LIVE_BELL_RECONNECTS = Counter(
    "parley_live_bell_reconnects_total",
    "Times the live process lost its LISTEN connection and connected again.",
)


# Collectors whose values are read when /metrics is scraped (from the database,
# say), registered by the apps that own them (``AppConfig.ready``).
SCRAPE_COLLECTORS: list[Collector] = []


def render() -> tuple[bytes, str]:
    """The exposition text for every process that shares the metrics folder."""
    registry = CollectorRegistry()
    for collector in SCRAPE_COLLECTORS:
        registry.register(collector)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest() + generate_latest(registry), CONTENT_TYPE_LATEST
