"""Per-conversation lanes: order within a lane, parallel lanes, solo lanes after contention."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from parley.intake.lanes import Lanes


@dataclass(frozen=True)
class Item:
    lane: str
    n: int


def test_a_lane_runs_one_batch_at_a_time_in_order() -> None:
    lanes: Lanes[Item] = Lanes()
    for n in range(3):
        lanes.put(Item("a", n))
    lanes.put(Item("b", 0))
    first = lanes.take(limit=2, timeout=0)
    assert first == [Item("a", 0), Item("a", 1)]
    # "a" is busy: the next worker gets "b", not the rest of "a".
    assert lanes.take(limit=10, timeout=0) == [Item("b", 0)]
    assert lanes.take(limit=10, timeout=0) == []
    lanes.done(first)
    assert lanes.take(limit=10, timeout=0) == [Item("a", 2)]


def test_a_batch_takes_several_ready_lanes_up_to_the_limit() -> None:
    lanes: Lanes[Item] = Lanes()
    for lane in "abc":
        lanes.put(Item(lane, 0))
        lanes.put(Item(lane, 1))
    assert lanes.take(limit=5, timeout=0) == [
        Item("a", 0), Item("a", 1), Item("b", 0), Item("b", 1), Item("c", 0),
    ]  # fmt: skip


def test_a_batch_put_back_returns_to_the_heads_and_each_lane_goes_alone() -> None:
    lanes: Lanes[Item] = Lanes()
    for lane in "ab":
        lanes.put(Item(lane, 0))
    batch = lanes.take(limit=10, timeout=0)
    lanes.put(Item("a", 1))  # arrived while the batch ran
    lanes.put_back(batch)
    lanes.done(batch)
    alone = lanes.take(limit=10, timeout=0)
    assert alone == [Item("a", 0), Item("a", 1)]
    assert lanes.take(limit=10, timeout=0) == [Item("b", 0)]
    lanes.applied(alone)
    lanes.done(alone)
    lanes.put(Item("a", 2))
    lanes.put(Item("c", 0))
    # "a" applied since: it shares batches again; "b" is still alone until it applies.
    assert lanes.take(limit=10, timeout=0) == [Item("a", 2), Item("c", 0)]


def test_a_waiting_worker_wakes_when_a_lane_becomes_ready() -> None:
    lanes: Lanes[Item] = Lanes()
    taken: list[list[Item]] = []
    worker = threading.Thread(target=lambda: taken.append(lanes.take(limit=5, timeout=5)))
    worker.start()
    lanes.put(Item("a", 0))
    worker.join(timeout=5)
    assert taken == [[Item("a", 0)]]
    assert not lanes.idle()
    lanes.done(taken[0])
    assert lanes.idle()
