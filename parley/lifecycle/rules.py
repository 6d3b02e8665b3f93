"""Local times and their instants (T-2), pure functions.

The scheduler works in UTC; a tenant's ``daily_close_at`` is a wall-clock
time in its zone. :func:`local_cutoff` turns "HH:MM on this local date" into
the one UTC instant it fires at:

* an ordinary time is that instant;
* a time that occurs twice (the fall-back hour) fires at its first
  occurrence (PEP 495's ``fold=0``);
* a time that does not exist (the spring-forward gap) fires at the first
  instant after the gap, the transition itself: 02:30 in New York on
  2026-03-08 fires at 03:00 EDT. (``datetime(2026, 3, 8, 2, 30,
  tzinfo=ZoneInfo("America/New_York"))`` would say 03:30: not what a
  person means.)

So a cut-off is the first instant whose local time is at or after HH:MM on
that date, whatever the zone's offsets do, 30-minute shifts included.
"""

from __future__ import annotations

from collections.abc import Container
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_SECOND = timedelta(seconds=1)


def zone_or_none(name: str) -> ZoneInfo | None:
    """The zone called ``name``, or None when there is no such IANA zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def local_cutoff(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The first instant (UTC) whose local time in ``zone`` is at or after ``at`` on ``day``."""
    wall = datetime.combine(day, at.replace(tzinfo=None))
    # fold=0 first: of a time that occurs twice, the first occurrence.
    for fold in (0, 1):
        instant = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if instant.astimezone(zone).replace(tzinfo=None) == wall:
            return instant
    # In a gap: the local clock jumps from before ``wall`` to after it at the
    # transition, which lies between the instants the two offsets give. Local
    # time only moves forward across that span, so a bisection finds it;
    # transitions fall on whole seconds.
    before, after = sorted(wall.replace(tzinfo=zone, fold=f).astimezone(UTC) for f in (0, 1))
    while after - before > _SECOND:
        middle = before + (after - before) // 2
        middle = middle.replace(microsecond=0)
        if middle.astimezone(zone).replace(tzinfo=None) >= wall:
            after = middle
        else:
            before = middle
    return after


def next_cutoff(
    *, now: datetime, at: time, zone: ZoneInfo, taken: Container[date] = ()
) -> tuple[date, datetime]:
    """The next daily close to plan: the first local date from today whose cut-off
    is still ahead of ``now`` and that has no close yet (``taken``)."""
    day = now.astimezone(zone).date()
    while True:
        cutoff = local_cutoff(day, at, zone)
        if cutoff > now and day not in taken:
            return day, cutoff
        day += timedelta(days=1)
