"""The retry rules (A-7), pure functions of their inputs."""

from __future__ import annotations

import random
from collections.abc import Sequence

# Retry-After may push a wait past the schedule by at most this (Svix's rule).
RETRY_AFTER_CAP_SECONDS = 2 * 3600.0


def schedule_index(*, attempts: int, max_attempts: int, schedule: Sequence[float]) -> int:
    """Where the next attempt is in the schedule.

    ``max_attempts`` was the schedule's length when the request was stored;
    an operator's retry extends it by the length again and starts the
    schedule over, so the index counts from the latest start.
    """
    start = max_attempts - len(schedule)
    return min(max(attempts - start, 0), len(schedule) - 1)


def retry_delay(
    *,
    attempts: int,
    max_attempts: int,
    schedule: Sequence[float],
    retry_after: float | None,
    jitter: float,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds until the next attempt after ``attempts`` made; None when they are used up.

    The schedule's wait varies by up to ``jitter`` either way. A channel's
    ``Retry-After`` wins when it is longer, up to the schedule's wait plus
    two hours. Nothing here sleeps: the caller stores the due time.
    """
    if attempts >= max_attempts:
        return None
    base = schedule[schedule_index(attempts=attempts, max_attempts=max_attempts, schedule=schedule)]
    delay = base * (1 + (rng or random).uniform(-jitter, jitter)) if base > 0 else 0.0
    if retry_after is not None:
        delay = min(max(delay, retry_after), base + RETRY_AFTER_CAP_SECONDS)
    return delay
