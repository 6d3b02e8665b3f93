"""Publishing events to the intake queues: ``manage.py publish_events`` and its function.

Each line is one webhook body (either envelope). It goes to the partition of
its conversation key (``parley.webhooks.dispatch.event_key``), the way the
README's wire contract tells producers in other languages to do it. A line
Parley cannot parse is published all the same (under the key
``UNPARSABLE_KEY``): the consumer keeps it as a dead letter, which is what a
producer's mistake should come to.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from parley.core.errors import ParleyError
from parley.intake.transports import Transport, for_url
from parley.webhooks.dispatch import event_key
from parley.webhooks.schemas import parse_event

UNPARSABLE_KEY = "unparsable"


@dataclass
class PublishSummary:
    published: int = 0
    # Lines that will not parse: published, and dead letters once consumed.
    unparsable: int = 0
    blank: int = 0
    seconds: float = 0.0
    by_queue: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        rate = self.published / self.seconds if self.seconds else 0.0
        return (
            f"published {self.published} events in {self.seconds:.2f} s ({rate:,.0f}/s) "
            f"to {len(self.by_queue)} queues; {self.unparsable} will be dead letters "
            f"(not valid events); {self.blank} blank lines skipped"
        )


def key_of(body: bytes) -> str | None:
    """The conversation key of a body, or None when it is not a valid event."""
    try:
        return event_key(parse_event(body))
    except ParleyError:
        return None


def publish_events(
    lines: Iterable[bytes | str],
    *,
    url: str | None = None,
    transport: Transport | None = None,
    progress: Callable[[int], None] | None = None,
) -> PublishSummary:
    """Publish JSON lines to ``url`` (default ``INTAKE_BROKER_URL``); returns what was sent."""
    from django.conf import settings

    transport = transport or for_url(url or settings.INTAKE_BROKER_URL)
    summary = PublishSummary()
    started = time.monotonic()
    last_ms = 0
    with transport.connection() as conn:
        producer = conn.Producer()
        for raw in lines:
            body = raw.encode() if isinstance(raw, str) else raw
            body = body.strip()
            if not body:
                summary.blank += 1
                continue
            key = key_of(body)
            if key is None:
                summary.unparsable += 1
            if transport.source == "filesystem":
                # kombu names message files by the millisecond; two in the same
                # one could be read in either order.
                while (now_ms := int(time.monotonic() * 1000)) <= last_ms:
                    time.sleep(0.0002)
                last_ms = now_ms
            transport.publish(producer, body, key or UNPARSABLE_KEY)
            summary.published += 1
            summary.by_queue[transport.queue_of(key or UNPARSABLE_KEY)] += 1
            if progress is not None:
                progress(summary.published)
    summary.seconds = time.monotonic() - started
    return summary
