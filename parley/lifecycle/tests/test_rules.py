"""Local cut-offs (T-2): the UTC instant a local HH:MM fires at, across DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.lifecycle.rules import local_cutoff, next_cutoff, zone_or_none


@pytest.mark.parametrize(
    ("zone", "day", "at", "expected_utc", "expected_local"),
    [
        # Spring forward, 02:00 -> 03:00: 02:30 does not exist; it fires at 03:00 EDT.
        ("America/New_York", date(2026, 3, 8), time(2, 30), "2026-03-08T07:00", "03:00-04:00"),
        ("America/New_York", date(2026, 3, 8), time(2, 0), "2026-03-08T07:00", "03:00-04:00"),
        ("America/New_York", date(2026, 3, 8), time(3, 0), "2026-03-08T07:00", "03:00-04:00"),
        ("America/New_York", date(2026, 3, 8), time(1, 59), "2026-03-08T06:59", "01:59-05:00"),
        # Fall back, 02:00 -> 01:00: 01:30 happens twice; the first (EDT) counts.
        ("America/New_York", date(2026, 11, 1), time(1, 30), "2026-11-01T05:30", "01:30-04:00"),
        ("America/New_York", date(2026, 11, 1), time(2, 30), "2026-11-01T07:30", "02:30-05:00"),
        # Europe/London: 01:00 -> 02:00 on 2026-03-29; 02:00 -> 01:00 on 2026-10-25.
        ("Europe/London", date(2026, 3, 29), time(1, 30), "2026-03-29T01:00", "02:00+01:00"),
        ("Europe/London", date(2026, 10, 25), time(1, 30), "2026-10-25T00:30", "01:30+01:00"),
        ("Europe/London", date(2026, 7, 1), time(18, 0), "2026-07-01T17:00", "18:00+01:00"),
        # Australia/Lord_Howe shifts by 30 minutes: 02:00 -> 02:30 on 2026-10-04 ...
        ("Australia/Lord_Howe", date(2026, 10, 4), time(2, 15), "2026-10-03T15:30", "02:30+11:00"),
        # ... and 02:00 -> 01:30 on 2026-04-05: 01:45 happens twice.
        ("Australia/Lord_Howe", date(2026, 4, 5), time(1, 45), "2026-04-04T14:45", "01:45+11:00"),
        ("Australia/Lord_Howe", date(2026, 4, 5), time(2, 0), "2026-04-04T15:30", "02:00+10:30"),
        # America/Sao_Paulo has had no DST since 2019: always -03:00.
        ("America/Sao_Paulo", date(2026, 3, 8), time(18, 0), "2026-03-08T21:00", "18:00-03:00"),
        ("America/Sao_Paulo", date(2026, 11, 1), time(0, 0), "2026-11-01T03:00", "00:00-03:00"),
        ("UTC", date(2026, 3, 8), time(0, 0), "2026-03-08T00:00", "00:00+00:00"),
    ],
)
def test_a_local_time_fires_at_the_first_instant_at_or_after_it(
    zone: str, day: date, at: time, expected_utc: str, expected_local: str
) -> None:
    cutoff = local_cutoff(day, at, ZoneInfo(zone))

    assert cutoff == datetime.fromisoformat(expected_utc).replace(tzinfo=UTC)
    assert cutoff.astimezone(ZoneInfo(zone)).isoformat(timespec="minutes")[11:] == expected_local


@settings(max_examples=400, deadline=None)
@given(
    zone=st.sampled_from(sorted(available_timezones())),
    day=st.dates(min_value=date(1990, 1, 1), max_value=date(2037, 12, 31)),
    minute=st.integers(min_value=0, max_value=24 * 60 - 1),
)
def test_in_every_zone_the_cutoff_is_the_first_instant_whose_local_time_reaches_it(
    zone: str, day: date, minute: int
) -> None:
    tz = ZoneInfo(zone)
    at = time(minute // 60, minute % 60)
    wall = datetime.combine(day, at)

    cutoff = local_cutoff(day, at, tz)

    def local(instant: datetime) -> datetime:
        return instant.astimezone(tz).replace(tzinfo=None)

    assert local(cutoff) >= wall
    assert local(cutoff - timedelta(seconds=1)) < wall


def test_next_cutoff_is_today_while_ahead_and_tomorrow_once_passed() -> None:
    tz = ZoneInfo("America/Sao_Paulo")
    morning = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)  # 09:00 local

    assert next_cutoff(now=morning, at=time(18, 0), zone=tz) == (
        date(2026, 5, 4),
        datetime(2026, 5, 4, 21, 0, tzinfo=UTC),
    )
    # Set at 09:00 for 07:00: the first close is tomorrow, not now.
    assert next_cutoff(now=morning, at=time(7, 0), zone=tz) == (
        date(2026, 5, 5),
        datetime(2026, 5, 5, 10, 0, tzinfo=UTC),
    )


def test_next_cutoff_skips_a_local_date_that_already_has_a_close() -> None:
    tz = ZoneInfo("UTC")
    now = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)

    day, cutoff = next_cutoff(now=now, at=time(19, 0), zone=tz, taken={date(2026, 5, 4)})

    assert (day, cutoff) == (date(2026, 5, 5), datetime(2026, 5, 5, 19, 0, tzinfo=UTC))


def test_next_cutoff_counts_the_local_date_not_the_utc_one() -> None:
    """At 23:30 UTC it is already tomorrow in Lord Howe (+11)."""
    tz = ZoneInfo("Australia/Lord_Howe")
    now = datetime(2026, 10, 3, 23, 30, tzinfo=UTC)  # 2026-10-04 10:30 local

    day, cutoff = next_cutoff(now=now, at=time(18, 0), zone=tz)

    assert day == date(2026, 10, 4)
    assert cutoff == datetime(2026, 10, 4, 7, 0, tzinfo=UTC)


def test_an_unknown_zone_is_none() -> None:
    assert zone_or_none("Mars/Olympus_Mons") is None
    assert zone_or_none("../etc/passwd") is None
    assert zone_or_none("America/Sao_Paulo") == ZoneInfo("America/Sao_Paulo")
