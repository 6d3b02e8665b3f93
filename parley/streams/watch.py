"""One fallback re-check per process and kind, however many requests wait (SPEC L-3).

The bell wakes a waiting request the moment a writer commits for its key.
Should a notification be lost (a dropped ``LISTEN`` connection, a writer
that does not ring), the database is looked at again at least every
``LIVE_RECHECK_SECONDS``. Done by each waiter, 200 long polls would make 200
queries a second, the idle cost of the live process; done here, it is one
query a second per kind of stream: *which of the keys waited on here have
pending items?* The waiters of those keys are rung, and claim.

Without PostgreSQL there is no bell, and this is the short poll that takes
its place: every 0.25 s (``LIVE_RECHECK_SECONDS`` there).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Iterator

import structlog

from parley.live.bell import bell
from parley.streams import services
from parley.streams.kinds import StreamKind

log = structlog.get_logger(__name__)


class PendingWatch:
    def __init__(self, kind: StreamKind) -> None:
        self.kind = kind
        self._keys: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def watching(self, key: str) -> Iterator[None]:
        """Include ``key`` in the re-checks for the life of the block."""
        self._keys[key] += 1
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._task = loop.create_task(self._run(), name=f"parley-watch-{self.kind.name}")
        try:
            yield
        finally:
            self._keys[key] -= 1
            if self._keys[key] <= 0:
                del self._keys[key]

    async def _run(self) -> None:
        # Imported here: longpoll imports this module.
        from parley.streams.longpoll import run_db

        while self._keys:
            await asyncio.sleep(bell.recheck_seconds)
            keys = sorted(self._keys)
            if not keys:
                return
            try:
                pending = await run_db(services.pending_keys, kind=self.kind, keys=keys)
            except Exception as exc:  # the database is down: the next round tries again
                log.warning("stream_watch_failed", kind=self.kind.name, error=str(exc))
                continue
            for key in pending:
                bell.dispatch(self.kind.channel, self.kind.bell_key(key) or "")


_WATCHES: dict[str, PendingWatch] = {}


def watch(kind: StreamKind) -> PendingWatch:
    if kind.name not in _WATCHES:
        _WATCHES[kind.name] = PendingWatch(kind)
    return _WATCHES[kind.name]
