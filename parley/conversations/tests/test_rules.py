from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from parley.conversations import rules

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
WINDOW = timedelta(seconds=5)


def seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


def test_due_time_is_the_window_after_the_last_message() -> None:
    due = rules.group_reply_due_at(
        opened_at=T0, last_message_at=T0 + seconds(3), window=WINDOW, max_wait=None
    )
    assert due == T0 + seconds(8)


def test_max_wait_caps_the_due_time_from_the_first_message() -> None:
    due = rules.group_reply_due_at(
        opened_at=T0, last_message_at=T0 + seconds(9), window=WINDOW, max_wait=seconds(10)
    )
    assert due == T0 + seconds(10)


@pytest.mark.parametrize(
    ("gap", "joins"),
    [(0.0, True), (4.9, True), (5.0, True), (5.1, False), (60.0, False)],
)
def test_message_joins_iff_it_arrives_within_the_window_of_the_previous(
    gap: float, joins: bool
) -> None:
    due = rules.group_reply_due_at(opened_at=T0, last_message_at=T0, window=WINDOW, max_wait=None)
    assert rules.joins_group(arrival=T0 + seconds(gap), group_reply_due_at=due) is joins


@pytest.mark.parametrize(
    ("age", "adoptable"), [(0.0, True), (5.9, True), (6.0, True), (6.1, False)]
)
def test_orphan_is_adoptable_up_to_the_tolerance(age: float, adoptable: bool) -> None:
    assert (
        rules.orphan_is_adoptable(received_at=T0, now=T0 + seconds(age), tolerance=seconds(6))
        is adoptable
    )
