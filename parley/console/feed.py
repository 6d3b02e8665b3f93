"""One reader of the outbox per live process, shared by every console stream (SPEC C-4, L-3).

Twenty open consoles must cost about what one costs: so the process reads
the outbox once for all of them, and renders each distinct page once for
all the streams that show it.

The feed (:class:`Feed`) runs as one task while any stream is attached:

1. It takes its first position (with ``CONSOLE_WAKE_ON_NOTIFY``, after
   subscribing to the outbox's bell, so that a commit between the two still
   wakes it: ``parley.live.bell``).
2. It reads the events after its position, in commit order, in a short sync
   function that holds a connection only while it reads (``db.background``).
3. If there were any, it makes them one *tick*: a sequence number, the
   position it has read up to, and what changed (``changes.Changes``), and
   offers the tick to every attached stream; then it sleeps
   ``CONSOLE_BATCH_SECONDS``, so that a burst of events becomes one tick, not
   hundreds (the page updates at most that often, however busy the engine).
4. If there were none, it looks again POLL_SECONDS later (or when the bell
   rings, with ``CONSOLE_WAKE_ON_NOTIFY``; a ring that finds nothing means
   the rows wait behind an older transaction still running, so it looks
   again after 50 ms, then 100, 200..., not a whole re-check later).
5. With no stream attached for ``IDLE_EXIT_SECONDS`` it stops.

Why it polls by default: while anyone listens on the outbox's channel, every
outbox write (every webhook) sends a NOTIFY, and PostgreSQL serialises the
commits of notifying transactions. With 20 consoles open on the bell, the
webhook half-load p99 of ``make bench`` went from 16 to 650 ms; polling four
times a second costs one indexed read each time and keeps changes well
within C-4's second.

A stream that is slow to take its ticks does not hold the feed up: its
:class:`Subscription` merges the ticks it has not taken into one.

Rendering is shared too (:meth:`Feed.render`). A page's fragments are always
rendered from the database, never patched from an event, so a rendering
that *starts* after tick N has been read shows everything tick N says: it
serves every stream that needs the page as of tick N or earlier.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass
from functools import partial

import structlog
from django.conf import settings

from parley.console import db
from parley.console.changes import NOTHING, Changes, changes_of
from parley.live.bell import Waiter, bell
from parley.outbox import selectors
from parley.outbox.selectors import Position
from parley.outbox.services import OUTBOX_CHANNEL

log = structlog.get_logger(__name__)

READ_LIMIT = 1_000  # events a query reads
READS_PER_TICK = 10  # queries a tick may take before it is offered
IDLE_EXIT_SECONDS = 30.0
RENDERS_KEPT = 256  # distinct pages whose latest rendering is kept
RETRY_SECONDS = 1.0  # after the outbox could not be read
POLL_SECONDS = 0.25  # between two looks at a quiet outbox
HIDDEN_FIRST_SECONDS = 0.05  # the first look again after a ring that found nothing


@dataclass(frozen=True)
class Tick:
    seq: int
    position: Position  # every event up to here has been read
    changes: Changes


class Subscription:
    """A stream's place at the feed: the ticks it has not taken yet, merged into one."""

    def __init__(self, seq: int, position: Position) -> None:
        # What the feed had read when the stream attached; then the latest tick offered.
        self.seq = seq
        self.position = position
        self._changes = NOTHING
        self._offered = asyncio.Event()

    def offer(self, tick: Tick) -> None:
        self.seq, self.position = tick.seq, tick.position
        self._changes = self._changes | tick.changes
        self._offered.set()

    async def wait(self, timeout: float) -> bool:
        """Until a tick is offered (True) or ``timeout`` seconds pass (False)."""
        try:
            await asyncio.wait_for(self._offered.wait(), timeout=max(timeout, 0.0))
        except TimeoutError:
            return False
        return True

    def take(self) -> tuple[int, Position, Changes]:
        """The merged ticks: the latest sequence number and position, and every change."""
        changes, self._changes = self._changes, NOTHING
        self._offered.clear()
        return self.seq, self.position, changes


def read_ticks(position: Position) -> tuple[Position, Changes, int]:
    """Read the events after ``position`` (at most READS_PER_TICK queries); what they change."""
    events = []
    for _ in range(READS_PER_TICK):
        batch = selectors.events_after(position, limit=READ_LIMIT)
        events.extend(batch)
        if batch:
            position = batch[-1].position
        if len(batch) < READ_LIMIT:
            break
    return position, changes_of(events), len(events)


class Feed:
    def __init__(self) -> None:
        self.seq = 0
        self.position: Position = selectors.START
        self._subscriptions: set[Subscription] = set()
        self._running = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Event | None = None
        self._renders: OrderedDict[Hashable, tuple[int, str]] = OrderedDict()
        # After a ring that found nothing: how soon to look again (None: wait for the bell).
        self._hidden: float | None = None
        self._rendering: dict[Hashable, tuple[int, asyncio.Task[str]]] = {}

    @property
    def attached(self) -> int:
        return len(self._subscriptions)

    async def attach(self) -> Subscription:
        """Join the feed (starting it if needed); the ticks after its current position follow."""
        ready = self._start()
        await ready.wait()
        subscription = Subscription(self.seq, self.position)
        self._subscriptions.add(subscription)
        return subscription

    def detach(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    def _start(self) -> asyncio.Event:
        loop = asyncio.get_running_loop()
        if self._running and self._loop is loop and self._ready is not None:
            return self._ready
        # First stream, or a new event loop (tests): start afresh.
        self._loop, self._running = loop, True
        self._ready = asyncio.Event()
        self._subscriptions.clear()
        self._renders.clear()
        self._rendering.clear()
        self._task = loop.create_task(self._run(self._ready), name="parley-console-feed")
        return self._ready

    async def stop(self) -> None:
        """Stop the feed task (tests); the next stream starts it again."""
        task, self._task, self._running = self._task, None, False
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _run(self, ready: asyncio.Event) -> None:
        wake = bell.subscribe(OUTBOX_CHANNEL) if settings.CONSOLE_WAKE_ON_NOTIFY else _no_bell()
        try:
            async with wake as waiter:
                while True:
                    try:
                        self.position = await db.background(selectors.current_position)
                        break
                    except Exception as exc:
                        log.warning("console_feed_unreadable", error=str(exc))
                        await asyncio.sleep(RETRY_SECONDS)
                ready.set()
                idle_since: float | None = None
                while True:
                    if self._subscriptions:
                        idle_since = None
                    elif idle_since is None:
                        idle_since = time.monotonic()
                    elif time.monotonic() - idle_since > IDLE_EXIT_SECONDS:
                        # No await between this check and the flag: a stream that
                        # attaches from now on starts a new feed.
                        self._running = False
                        return
                    await self._tick(waiter)
        finally:
            if self._ready is ready:
                self._running = False

    async def _tick(self, waiter: Waiter) -> None:
        try:
            position, changes, count = await db.background(read_ticks, self.position)
        except Exception as exc:  # the database restarting: streams keep their heartbeats
            log.warning("console_feed_unreadable", error=str(exc))
            await asyncio.sleep(RETRY_SECONDS)
            return
        if count:
            self._hidden = None
            self.seq += 1
            self.position = position
            tick = Tick(self.seq, position, changes)
            for subscription in list(self._subscriptions):
                subscription.offer(tick)
            await asyncio.sleep(settings.CONSOLE_BATCH_SECONDS)
        else:
            recheck = min(bell.recheck_seconds, POLL_SECONDS)
            if self._hidden is not None:
                wait, self._hidden = self._hidden, self._hidden * 2
                if self._hidden > recheck:
                    self._hidden = None
            else:
                wait = recheck
            if await waiter.wait(min(wait, recheck)):
                self._hidden = HIDDEN_FIRST_SECONDS

    async def render(self, key: Hashable, seq: int, render: Callable[[], str]) -> str:
        """``render()``'s result for the page ``key``, as of tick ``seq`` or later.

        One rendering serves every stream that asks for the same page as of
        the same or an earlier tick, including those that ask while it runs.
        It runs as a task of its own, so a stream that goes away while it
        waits does not cancel it for the others.
        """
        kept = self._renders.get(key)
        if kept is not None and kept[0] >= seq:
            self._renders.move_to_end(key)
            return kept[1]
        running = self._rendering.get(key)
        if running is None or running[0] < seq:
            # Everything up to self.seq is committed: a rendering that starts now shows it.
            task = asyncio.get_running_loop().create_task(db.background(render))
            running = (self.seq, task)
            self._rendering[key] = running
            running[1].add_done_callback(partial(self._keep, key, running))
        return await asyncio.shield(running[1])

    def _keep(
        self, key: Hashable, entry: tuple[int, asyncio.Task[str]], _: asyncio.Task[str]
    ) -> None:
        seq, task = entry
        if self._rendering.get(key) is entry:
            del self._rendering[key]
        if task.cancelled() or task.exception() is not None:
            return
        kept = self._renders.get(key)
        if kept is None or kept[0] <= seq:
            self._renders[key] = (seq, task.result())
            self._renders.move_to_end(key)
            while len(self._renders) > RENDERS_KEPT:
                self._renders.popitem(last=False)


@contextlib.asynccontextmanager
async def _no_bell() -> AsyncIterator[Waiter]:
    """A waiter that nothing rings: the feed polls."""
    yield Waiter()


# One feed per process: every console stream of the live process shares it.
feed = Feed()
