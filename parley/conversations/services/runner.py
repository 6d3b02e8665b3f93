"""Reply runners (G-8): Celery tasks that claim due groups as they have room, write them
concurrently, and record each as its call ends.

A runner pulls its work. It claims only as many groups as it can write at
once (one for a plain function, ``REPLY_ASYNC_CONCURRENCY`` for an async
writer), so a group's lease starts when its writer call starts, never while
the group waits in a queue: a backlog can delay replies but cannot make
leases run out and groups be written twice. When a call ends the runner
records it and claims the next due group at once, without waiting for a
sweep. The sweep starts runners when groups fall due and a worker process is
free (:func:`services.sweep.due_work_sweep`).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass

import structlog
from django.conf import settings

from parley.conversations.replies import ReplyRequest, get_reply_writer, is_async_writer
from parley.conversations.services.batches import claim_due, give_up_exhausted, settle
from parley.conversations.services.context import reply_requests
from parley.conversations.services.replies import Claimed
from parley.conversations.writing import writer_calls

log = structlog.get_logger(__name__)

# Seconds the runner task's time limits leave beyond its budget and last call.
TIME_LIMIT_MARGIN_SECONDS = 5.0


@dataclass(frozen=True)
class RunReport:
    replied: int
    failed_attempts: int
    # True: the budget ended while groups may still be due (the handover ran).
    more: bool


def runner_capacity() -> int:
    """Writer calls one runner makes at a time."""
    return settings.REPLY_ASYNC_CONCURRENCY if is_async_writer(get_reply_writer()) else 1


def runner_time_limits() -> tuple[int, int]:
    """The runner task's soft and hard time limits, in whole seconds: its budget, then
    one last call."""
    soft = math.ceil(
        settings.REPLY_RUNNER_SECONDS
        + settings.REPLY_WRITER_TIMEOUT.total_seconds()
        + TIME_LIMIT_MARGIN_SECONDS
    )
    return soft, soft + math.ceil(TIME_LIMIT_MARGIN_SECONDS)


def replies_run(
    *, budget: float | None = None, handover: Callable[[], object] | None = None
) -> RunReport:
    """Claim, write and record due groups until none is left or ``budget`` seconds pass.

    1. While there is room (and budget), claim due groups, oldest first, up
       to the room; give up on those whose attempts are exhausted; read their
       requests and start their writer calls.
    2. Wait until a call ends (a plain function's call has ended already);
       with room left, look for due groups again every ``SWEEP_INTERVAL``.
    3. Record what ended: the replies in one record, each failure on its own
       (backoff, or FAILED).
    4. Stop when nothing is due and no call runs. Once the budget is spent,
       claim nothing more, call ``handover`` (the task starts a successor,
       which a free process can take while this one finishes its calls) and
       finish the calls in flight.

    The default budget is REPLY_RUNNER_SECONDS, shortened at random by up to
    a quarter, so that runners started together do not all hand over at once.
    """
    if budget is None:
        budget = settings.REPLY_RUNNER_SECONDS * random.uniform(0.75, 1.0)  # noqa: S311
    poll = settings.SWEEP_INTERVAL.total_seconds()
    started = time.monotonic()
    in_flight: dict[Future[str], tuple[Claimed, ReplyRequest]] = {}
    replied = failed = 0
    taking = True
    with writer_calls() as calls:
        while True:
            if taking and time.monotonic() - started >= budget:
                taking = False
                if handover is not None:
                    handover()
            found = False
            if taking and len(in_flight) < calls.capacity:
                claimed = claim_due(calls.capacity - len(in_flight))
                found = bool(claimed)
                to_write = give_up_exhausted(claimed)
                for c, request in zip(to_write, reply_requests(to_write), strict=True):
                    in_flight[calls.submit(request)] = (c, request)
            if not in_flight:
                if taking and found:
                    continue  # every group claimed was given up on: look again
                break
            room = taking and len(in_flight) < calls.capacity
            done, _ = wait(
                list(in_flight), timeout=poll if room else None, return_when=FIRST_COMPLETED
            )
            answered, failures = settle((*in_flight.pop(f), f) for f in done)
            replied += answered
            failed += failures
    more = not taking
    log.info("reply_runner_done", replied=replied, failed_attempts=failed, more=more)
    return RunReport(replied=replied, failed_attempts=failed, more=more)


def runners_start(count: int) -> int:
    """Publish ``count`` runner tasks; return how many were published.

    A runner waiting in the queue longer than a few sweep intervals expires
    unrun: by then later sweeps have started others where there was room. A
    broker that is down costs nothing but time: the groups stay due, and the
    next sweep tries again.
    """
    from parley.conversations.tasks import reply_runner_task

    expires = max(1.0, 4 * settings.SWEEP_INTERVAL.total_seconds())
    for published in range(count):
        try:
            reply_runner_task.apply_async(expires=expires)
        except Exception:
            log.exception("reply_runner_publish_failed")
            return published
    return count
