"""The conversational scenario, without locust: what each conversation does, and what that costs.

``bench.conversations`` plays it under locust; the orchestrator uses the same
numbers to choose the request rate (importing locust would monkey-patch the
orchestrator for gevent, so the plan lives here).
"""

from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass

# The bench asks for at least this many conversations in a default run.
TARGET_CONVERSATIONS = 1000


@dataclass(frozen=True)
class Step:
    """Wait ``delay`` seconds, then send one event."""

    delay: float
    kind: str  # "C" NEW_CONVERSATION, "M" NEW_MESSAGE, "X" CLOSE_CONVERSATION
    replay: bool = False


def plan_conversation(rng: random.Random, window: float, tolerance: float) -> list[Step]:
    """One conversation's script: its events and the pauses before them."""
    gap_max = min(4.0, 0.8 * window)  # inside a burst: always joins the group
    pause = (window + 0.5, window + 3.0)  # between bursts: always a new group
    steps: list[Step] = []
    bursts = rng.randint(1, 4)
    out_of_order = rng.random() < 0.15
    for b in range(bursts):
        size = rng.randint(1, 5)
        for i in range(size):
            if b == 0 and i == 0:
                if out_of_order:
                    steps.append(Step(0.0, "M", replay=rng.random() < 0.02))
                    early = rng.uniform(0.2, min(3.0, tolerance / 2))
                    steps.append(Step(early, "C"))
                    continue
                steps.append(Step(0.0, "C"))
                delay = rng.uniform(0.0, 1.0)
            elif i == 0:
                delay = rng.uniform(*pause)
            else:
                delay = rng.uniform(0.0, gap_max)
            steps.append(Step(delay, "M", replay=rng.random() < 0.02))
    if rng.random() < 0.5:
        # Half of the closes land while the last group is still collecting.
        delay = rng.uniform(0.0, 1.0) if rng.random() < 0.5 else rng.uniform(*pause)
        steps.append(Step(delay, "X"))
    return steps


@functools.cache
def expected_load(window: float, tolerance: float, samples: int = 20_000) -> tuple[float, float]:
    """Mean requests per conversation and mean conversation duration (s)."""
    rng = random.Random(1)
    requests = duration = 0.0
    for _ in range(samples):
        plan = plan_conversation(rng, window, tolerance)
        requests += sum(2 if s.replay else 1 for s in plan)
        duration += sum(s.delay for s in plan) + 0.005 * len(plan)
    return requests / samples, duration / samples


@dataclass(frozen=True)
class Layout:
    """How a run at ``rate`` requests/s for ``seconds`` is laid out over locust users."""

    users: int
    stagger: float
    requests_per_conversation: float
    conversation_seconds: float


def layout(rate: float, seconds: float, window: float, tolerance: float) -> Layout:
    """Users so that the request rate is ``rate``; each starts within ``stagger`` s."""
    per_conversation, duration = expected_load(window, tolerance)
    users = max(1, math.ceil(rate * duration / per_conversation))
    return Layout(users, min(duration, seconds / 3), per_conversation, duration)


def expected_conversations(
    rate: float, seconds: float, window: float, tolerance: float, seed: int = 2
) -> int:
    """Conversations a run would start (played whole or cut by the deadline), latency aside."""
    plan = layout(rate, seconds, window, tolerance)
    rng = random.Random(seed)
    started = 0
    for _ in range(plan.users):
        t = rng.uniform(0.0, plan.stagger)
        while t < seconds:
            started += 1
            t += sum(s.delay for s in plan_conversation(rng, window, tolerance)) + 0.005
    return started


def rate_for_conversations(
    conversations: int, seconds: float, window: float, tolerance: float
) -> float:
    """The request rate at which a run of ``seconds`` starts about ``conversations``."""
    probe = 100.0
    played = expected_conversations(probe, seconds, window, tolerance)
    return probe * conversations / max(played, 1)


@functools.cache
def expected_groups(window: float, tolerance: float, samples: int = 20_000) -> float:
    """Mean groups per conversation: a message more than ``window`` after the previous one
    starts a group (G-1)."""
    rng = random.Random(1)
    groups = 0
    for _ in range(samples):
        clock, last = 0.0, None
        for step in plan_conversation(rng, window, tolerance):
            clock += step.delay
            if step.kind == "M":
                if last is None or clock - last > window:
                    groups += 1
                last = clock
    return groups / samples
