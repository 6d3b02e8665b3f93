"""The timing rules of SPEC sections 2 and 4, as pure functions of server times.

Every argument is a server arrival time (W-7): the event ``timestamp`` never
enters a window, so 2025 sample payloads behave exactly like fresh ones.
"""

from __future__ import annotations

from datetime import datetime, timedelta


def group_reply_due_at(
    *,
    opened_at: datetime,
    last_message_at: datetime,
    window: timedelta,
    max_wait: timedelta | None,
) -> datetime:
    """When a group closes: ``window`` after its last message (a trailing
    debounce, G-1), or ``max_wait`` after its first one if that is sooner (G-6)."""
    due = last_message_at + window
    if max_wait is not None:
        due = min(due, opened_at + max_wait)
    return due


def joins_group(*, arrival: datetime, group_reply_due_at: datetime) -> bool:
    """A message joins the open group iff it arrives no later than the group closes.

    With the due time above this is "at most ``window`` after the previous
    message, and within the cap"; a later message starts a new group.
    """
    return arrival <= group_reply_due_at


def orphan_is_adoptable(*, received_at: datetime, now: datetime, tolerance: timedelta) -> bool:
    """A buffered message joins its conversation iff that arrives at most
    ``tolerance`` after the message did (B-2, B-3)."""
    return now - received_at <= tolerance


def reply_retry_delay(*, attempt: int, base: timedelta, cap: timedelta, jitter: float) -> timedelta:
    """How long a group waits after its writer's ``attempt``-th failure (G-8).

    Exponential backoff: ``base`` after the first failure, doubled after each
    one, at most ``cap``; "equal jitter" keeps between half and all of it
    (``jitter`` in [0, 1], random in production), so groups that failed
    together, when a bot's backend went down, do not all retry at the same
    instant.
    """
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    return delay / 2 + delay / 2 * min(1.0, max(0.0, jitter))
