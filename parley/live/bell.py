"""The live process's doorbell: one ``LISTEN`` connection, many waiters (SPEC L-3, L-4).

A view that waits (a long poll, an event stream) never holds a database
connection or a transaction while it waits. It subscribes to a channel
*before* its first look at the database, looks, and if there is nothing for
it, waits for the bell or a short re-check, whichever comes first::

    async with bell.subscribe("parley_pix", key=ispb) as waiter:
        while (found := await look()) is None and not past(deadline):
            await waiter.wait(min(time_left(), bell.recheck_seconds))

Because the waiter is registered before the first look, a commit that lands
between the look and the wait still rings it (the lost wake-up of a
query-then-subscribe loop). A notification names a channel and, optionally,
a key (an ISPB, a tenant): it wakes the waiters of that key and those that
wait for the whole channel; an empty payload wakes every waiter of the
channel. The database row stays the truth: the bell only says "look again",
and the re-check (``LIVE_RECHECK_SECONDS``, at most 1 s) covers a
notification lost with a dropped connection.

One listener task per process holds an autocommit psycopg connection that
``LISTEN``\\ s on every channel that has had a waiter, and reconnects with a
backoff if it drops (every waiter then re-checks at once). Writers ring only
while someone listens (``parley.live.models``): the first waiter of a
channel in this process writes that before it is let go, and a second task
keeps it fresh while waiters remain.

Without PostgreSQL (the embedded defaults) there is no bell: waiters simply
re-check every ``LIVE_RECHECK_SECONDS`` (0.25 s there), a short poll.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import psycopg
import structlog
from django.conf import settings
from django.db import connections
from django.utils import timezone
from psycopg import sql

from parley.core import metrics

log = structlog.get_logger(__name__)

# How long a "someone listens" promise lasts, and how often it is renewed.
PRESENCE_TTL = timedelta(seconds=30)
PRESENCE_REFRESH_SECONDS = 10.0
# Waiting between reconnection attempts of the listener, doubling up to the cap.
RECONNECT_FIRST_SECONDS = 0.2
RECONNECT_MAX_SECONDS = 5.0
# How often the listener looks up from its notifications to LISTEN on new channels.
LISTEN_POLL_SECONDS = 0.5

# libpq keywords Django's OPTIONS may carry; the others are Django's own.
_LIBPQ_OPTIONS = {
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslpassword",
    "connect_timeout",
    "application_name",
    "options",
    "target_session_attrs",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
}


def conninfo(alias: str = "default") -> str:
    """A libpq connection string for Django's database ``alias``."""
    db = connections[alias].settings_dict
    params: dict[str, Any] = {
        "dbname": db["NAME"],
        "user": db.get("USER") or None,
        "password": db.get("PASSWORD") or None,
        "host": db.get("HOST") or None,
        "port": db.get("PORT") or None,
    }
    params |= {k: v for k, v in (db.get("OPTIONS") or {}).items() if k in _LIBPQ_OPTIONS}
    return psycopg.conninfo.make_conninfo(**{k: v for k, v in params.items() if v is not None})


class Waiter:
    """One waiting request's place at the bell."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def ring(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> bool:
        """Wait for a ring, at most ``timeout`` seconds; True if it rang."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout=max(timeout, 0.0))
        except TimeoutError:
            return False
        self._event.clear()
        return True


class Bell:
    def __init__(self) -> None:
        self._waiters: dict[str, dict[str | None, set[Waiter]]] = defaultdict(
            lambda: defaultdict(set)
        )
        self._channels: set[str] = set()  # every channel that has had a waiter
        self._present: set[str] = set()  # channels whose presence row is fresh
        # The presence write in flight per channel: the first waiters of a channel
        # share it rather than each opening a connection (a burst of 200 long polls).
        self._announcing: dict[str, asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.connected = asyncio.Event()

    @property
    def enabled(self) -> bool:
        return connections["default"].vendor == "postgresql"

    @property
    def recheck_seconds(self) -> float:
        return float(settings.LIVE_RECHECK_SECONDS)

    @contextlib.asynccontextmanager
    async def subscribe(self, channel: str, key: str | None = None) -> AsyncIterator[Waiter]:
        """Register a waiter on ``channel`` (and ``key``) for the life of the block."""
        waiter = Waiter()
        self._waiters[channel][key].add(waiter)
        metrics.LIVE_WAITERS.labels(channel=channel).inc()
        try:
            if self.enabled:
                self._start()
                self._channels.add(channel)
                if channel not in self._present:
                    await self._announced(channel)
            yield waiter
        finally:
            waiters = self._waiters[channel]
            waiters[key].discard(waiter)
            if not waiters[key]:
                del waiters[key]
            metrics.LIVE_WAITERS.labels(channel=channel).dec()

    def waiting(self, channel: str) -> int:
        return sum(len(w) for w in self._waiters.get(channel, {}).values())

    def dispatch(self, channel: str, payload: str) -> None:
        """Ring the waiters a notification concerns."""
        waiters = self._waiters.get(channel)
        if not waiters:
            return
        if payload:
            targets = [*waiters.get(payload, ()), *waiters.get(None, ())]
        else:
            targets = [w for group in waiters.values() for w in group]
        for waiter in targets:
            waiter.ring()

    def ring_everyone(self) -> None:
        for waiters in self._waiters.values():
            for group in waiters.values():
                for waiter in group:
                    waiter.ring()

    # --- the background tasks -----------------------------------------------------

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is loop and all(not t.done() for t in self._tasks):
            return
        # A new event loop (a test, a reloaded server): start afresh.
        self._loop = loop
        self._present.clear()
        self._announcing.clear()
        self.connected.clear()
        self._tasks = [
            loop.create_task(self._listen(), name="parley-bell-listen"),
            loop.create_task(self._keep_present(), name="parley-bell-presence"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        self._loop = None

    async def _listen(self) -> None:
        """Hold the LISTEN connection; reconnect with a backoff when it drops."""
        delay = RECONNECT_FIRST_SECONDS
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    conninfo(), autocommit=True
                ) as conn:
                    listening: set[str] = set()
                    delay = RECONNECT_FIRST_SECONDS
                    while True:
                        for channel in self._channels - listening:
                            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                            listening.add(channel)
                            # Its waiters may have looked before the LISTEN took:
                            # they look again now.
                            self.dispatch(channel, "")
                        if not self.connected.is_set():
                            self.connected.set()
                            # Anything committed while we were away: everyone looks again.
                            self.ring_everyone()
                        async for note in conn.notifies(timeout=LISTEN_POLL_SECONDS):
                            self.dispatch(note.channel, note.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a dropped connection, a restarted server
                self.connected.clear()
                metrics.LIVE_BELL_RECONNECTS.inc()
                log.warning("bell_disconnected", error=str(exc), retry_in_s=delay)
                self.ring_everyone()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_SECONDS)

    async def _announced(self, channel: str) -> None:
        """Wait until ``channel``'s presence is written, by this waiter or one before it."""
        task = self._announcing.get(channel)
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(self._announce(channel))
            self._announcing[channel] = task
        # Shielded: a waiter that goes away must not cancel the others' write.
        await asyncio.shield(task)

    async def _announce(self, channel: str) -> None:
        """Say that this process listens on ``channel``, before its first waiter looks."""
        until = timezone.now() + PRESENCE_TTL
        query = (
            "INSERT INTO live_listener (channel, listening_until) VALUES (%s, %s)"
            " ON CONFLICT (channel) DO UPDATE SET listening_until ="
            " GREATEST(live_listener.listening_until, EXCLUDED.listening_until)"
        )
        try:
            async with await psycopg.AsyncConnection.connect(conninfo(), autocommit=True) as conn:
                await conn.execute(query, [channel, until])
        except Exception as exc:
            # Writers will not ring for now; the waiter's re-check still finds its rows.
            log.warning("bell_presence_failed", channel=channel, error=str(exc))
            return
        self._present.add(channel)

    async def _keep_present(self) -> None:
        """Renew the presence of every channel that still has waiters; forget the others."""
        while True:
            await asyncio.sleep(PRESENCE_REFRESH_SECONDS)
            for channel in list(self._present):
                if self.waiting(channel):
                    await self._announce(channel)
                else:
                    self._present.discard(channel)


# One bell per process: every view of the live process shares it.
bell = Bell()
