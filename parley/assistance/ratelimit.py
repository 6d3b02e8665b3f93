"""The per-channel rate limit, shared by every worker through the database (A-10).

The generic cell rate algorithm: a channel allows ``rate`` sends a second
with bursts of ``burst``. Its state is one timestamp on the channel row, the
theoretical arrival time (TAT), moved by a compare-and-set ``UPDATE``, so
every worker process on every machine shares one limit, on PostgreSQL and
on SQLite alike, with no server besides the database. Over the limit, the
caller is told when the send fits and puts the delivery off until then: a
delay, never a failure, and no worker waits.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from parley.assistance.models import Channel

# A CAS that keeps losing means many workers want this channel right now: put
# the send off by one interval instead of spinning.
_MAX_TRIES = 8


def rate_acquire(channel: Channel, *, rate: float, burst: int, now: datetime) -> datetime | None:
    """Take one send from ``channel``'s allowance: None if it may go now, else when it fits."""
    if rate <= 0:
        return None
    interval = timedelta(seconds=1.0 / rate)
    tolerance = interval * (max(burst, 1) - 1)
    for _ in range(_MAX_TRIES):
        tat = Channel.objects.filter(pk=channel.pk).values_list("rate_tat", flat=True).first()
        effective = max(tat or now, now)
        if effective - now > tolerance:
            return effective - tolerance
        same = Channel.objects.filter(pk=channel.pk)
        same = same.filter(rate_tat__isnull=True) if tat is None else same.filter(rate_tat=tat)
        if same.update(rate_tat=effective + interval):
            return None
    return now + interval
