"""Per-conversation lanes: order within a conversation, parallelism across them.

The broker hands the consumer each conversation's events in publish order
(one partition, one reader). Here they wait in a lane per conversation key;
a worker takes the lanes that are ready (not being applied), several at once
up to the batch size, and marks them busy until their batch has committed.
So one conversation's events are applied one batch after the other, in
order, while other conversations' events go to other workers. A batch
that waited too long for a lock is put back, and each of its lanes is then
taken alone until it applies: a slow conversation holds up its own lane,
never the others (Q-5).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Hashable
from typing import Generic, Protocol, TypeVar


class Keyed(Protocol):
    @property
    def lane(self) -> Hashable: ...


T = TypeVar("T", bound=Keyed)


class Lanes(Generic[T]):
    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._pending: dict[Hashable, deque[T]] = {}
        self._ready: deque[Hashable] = deque()
        self._busy: set[Hashable] = set()
        # Lanes that wait for a lock: each is taken alone until it applies.
        self._solo: set[Hashable] = set()

    def put(self, item: T) -> None:
        with self._lock:
            lane = item.lane
            queue = self._pending.get(lane)
            if queue is None:
                queue = self._pending[lane] = deque()
                if lane not in self._busy:
                    self._ready.append(lane)
                    self._lock.notify()
            queue.append(item)

    def take(self, limit: int, timeout: float, linger: float = 0.0) -> list[T]:
        """Up to ``limit`` items from ready lanes, each lane's in order; [] after ``timeout``.

        With ``linger``, a batch that would be short waits that long once for
        more: a commit costs the same for one event as for fifty.
        """
        with self._lock:
            if not self._ready:
                self._lock.wait(timeout)
            if linger and self._ready and self._ready_count() < limit:
                self._lock.wait(linger)
            batch: list[T] = []
            while self._ready and len(batch) < limit:
                lane = self._ready[0]
                if lane in self._solo and batch:
                    break
                self._ready.popleft()
                queue = self._pending[lane]
                self._busy.add(lane)
                while queue and len(batch) < limit:
                    batch.append(queue.popleft())
                if not queue:
                    del self._pending[lane]
                if lane in self._solo:
                    break
            return batch

    def put_back(self, items: list[T]) -> None:
        """A batch that could not apply goes back to the heads of its lanes, in order; each of
        its lanes is then taken alone until it applies (call before ``done``)."""
        with self._lock:
            for item in reversed(items):
                self._pending.setdefault(item.lane, deque()).appendleft(item)
            self._solo.update(item.lane for item in items)

    def applied(self, items: list[T]) -> None:
        """The batch committed: its lanes may share batches again."""
        with self._lock:
            self._solo.difference_update(item.lane for item in items)

    def _ready_count(self) -> int:
        return sum(len(self._pending[lane]) for lane in self._ready)

    def done(self, items: list[T]) -> None:
        """The batch committed (or was given up): its lanes may run again."""
        with self._lock:
            for lane in dict.fromkeys(item.lane for item in items):  # in the batch's order
                self._busy.discard(lane)
                if lane in self._pending:
                    self._ready.append(lane)
                    self._lock.notify()

    def discard_pending(self) -> int:
        """Drop what no worker has taken yet (the broker delivers it again)."""
        with self._lock:
            dropped = sum(len(queue) for queue in self._pending.values())
            self._pending.clear()
            self._ready.clear()
            self._solo.clear()
            return dropped

    def idle(self) -> bool:
        with self._lock:
            return not self._pending and not self._busy
