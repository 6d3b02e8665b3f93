"""Metrics read from the database when ``/metrics`` is scraped (SPEC O-3, G-8)."""

from __future__ import annotations

from collections.abc import Iterator

import structlog
from django.db import DatabaseError
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from parley.conversations.models import MessageGroup

log = structlog.get_logger(__name__)

_FAILED = "parley_groups_failed"
_FAILED_HELP = "Groups FAILED right now (G-8): no reply until an operator retries them."


class FailedGroupsCollector(Collector):
    """How many groups are FAILED now, counted through their partial index.

    A counter cannot say it (an operator's retry takes a group out); every
    process would count the same rows, so the database answers, once per
    scrape. A database that does not answer leaves the gauge out rather
    than failing the scrape.
    """

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(_FAILED, _FAILED_HELP)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            count = MessageGroup.objects.filter(status=MessageGroup.Status.FAILED).count()
        except DatabaseError:
            log.warning("metrics_failed_groups_unavailable", exc_info=True)
            return
        yield GaugeMetricFamily(_FAILED, _FAILED_HELP, value=count)
