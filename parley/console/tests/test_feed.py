"""The process-wide feed: merged ticks, shared renderings, an idle stop (C-4, L-4)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from parley.console import feed as feed_module
from parley.console.changes import Changes
from parley.console.feed import Feed, Subscription, Tick


def test_a_subscription_merges_the_ticks_it_has_not_taken() -> None:
    async def scenario() -> tuple[bool, tuple[int, Any, Changes], bool]:
        subscription = Subscription(0, (0, 0))
        subscription.offer(Tick(1, (0, 5), Changes(conversations=frozenset({"a"}))))
        subscription.offer(Tick(2, (0, 9), Changes(panels=frozenset({"p"}))))
        rang = await subscription.wait(0.01)
        taken = subscription.take()
        return rang, taken, await subscription.wait(0.01)

    rang, taken, again = asyncio.run(scenario())
    assert rang
    assert not again
    assert taken == (2, (0, 9), Changes(conversations=frozenset({"a"}), panels=frozenset({"p"})))


def test_one_rendering_serves_every_stream_that_asks_as_of_the_same_tick() -> None:
    feed = Feed()
    calls: list[str] = []
    gate = threading.Event()

    def render() -> str:
        calls.append(threading.current_thread().name)
        gate.wait(2)
        return f"html {len(calls)}"

    async def scenario() -> tuple[list[str], str, str]:
        feed.seq = 3
        asking = [asyncio.create_task(feed.render("page", 3, render)) for _ in range(5)]
        await asyncio.sleep(0.1)
        gate.set()
        shared = await asyncio.gather(*asking)
        cached = await feed.render("page", 2, render)  # older: the kept one serves
        feed.seq = 4
        fresh = await feed.render("page", 4, render)  # newer than the kept one: again
        return shared, cached, fresh

    shared, cached, fresh = asyncio.run(scenario())
    assert shared == ["html 1"] * 5
    assert cached == "html 1"
    assert fresh == "html 2"
    assert len(calls) == 2


def test_a_stream_that_leaves_mid_rendering_does_not_cancel_it_for_the_others() -> None:
    feed = Feed()

    def render() -> str:
        time.sleep(0.2)
        return "done"

    async def scenario() -> str:
        first = asyncio.create_task(feed.render("page", 0, render))
        second = asyncio.create_task(feed.render("page", 0, render))
        await asyncio.sleep(0.05)
        first.cancel()
        return await second

    assert asyncio.run(scenario()) == "done"


@pytest.mark.django_db(transaction=True)
def test_the_feed_stops_when_no_stream_is_left_and_starts_again_for_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(feed_module, "IDLE_EXIT_SECONDS", 0.2)
    feed = Feed()

    async def scenario() -> tuple[bool, bool, bool]:
        subscription = await feed.attach()
        running = feed._running
        feed.detach(subscription)
        deadline = time.monotonic() + 5
        while feed._running and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stopped = not feed._running
        await feed.attach()
        restarted = feed._running
        await feed.stop()
        from parley.live.bell import bell

        await bell.stop()
        return running, stopped, restarted

    assert asyncio.run(scenario()) == (True, True, True)
