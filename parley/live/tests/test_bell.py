"""The bell of the live process, against the real PostgreSQL LISTEN/NOTIFY (SPEC L-3)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import pytest
from django.db import connection

from parley.live.bell import Bell, conninfo
from parley.live.models import Listener

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgresql_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the bell is PostgreSQL's LISTEN/NOTIFY; elsewhere waiters poll")


def run(scenario: Callable[[Bell], Awaitable[Any]]) -> Any:
    """Run a scenario with a fresh bell in a fresh event loop; stop the bell after."""

    async def main() -> Any:
        bell = Bell()
        try:
            return await scenario(bell)
        finally:
            await bell.stop()

    return asyncio.run(main())


async def ring(channel: str, payload: str = "") -> None:
    """What a writer does: parley_ring, committed (autocommit)."""
    async with await psycopg.AsyncConnection.connect(conninfo(), autocommit=True) as conn:
        await conn.execute("SELECT parley_ring(%s, %s)", [channel, payload])


def test_a_waiter_is_rung_by_a_commit_well_within_the_recheck() -> None:
    async def scenario(bell: Bell) -> float:
        async with bell.subscribe("t_pix", key="12345678") as waiter:
            await asyncio.wait_for(bell.connected.wait(), 5)
            started = time.monotonic()
            await ring("t_pix", "12345678")
            assert await waiter.wait(2.0)
            return time.monotonic() - started

    assert run(scenario) < 0.5


def test_the_first_waiter_of_a_channel_says_it_listens_before_it_looks() -> None:
    async def scenario(bell: Bell) -> bool:
        async with bell.subscribe("t_console"):
            # Inside the block, before any look at the database: the row is there.
            return await asyncio.to_thread(
                lambda: Listener.objects.filter(channel="t_console").exists()
            )

    assert run(scenario)


def test_a_waiter_for_one_key_sleeps_through_another_key() -> None:
    async def scenario(bell: Bell) -> tuple[bool, bool, bool]:
        async with bell.subscribe("t_pix", key="11111111") as waiter:
            await asyncio.wait_for(bell.connected.wait(), 5)
            await waiter.wait(0.1)  # the "look again" of the first connection
            await ring("t_pix", "22222222")
            other = await waiter.wait(0.4)
            await ring("t_pix", "")  # an empty payload is for everyone on the channel
            everyone = await waiter.wait(2.0)
            await ring("t_pix", "11111111")
            mine = await waiter.wait(2.0)
            return other, everyone, mine

    assert run(scenario) == (False, True, True)


def test_a_commit_between_the_look_and_the_wait_is_not_lost() -> None:
    """The lost wake-up of query-then-subscribe: here the waiter exists before the look."""

    async def scenario(bell: Bell) -> bool:
        async with bell.subscribe("t_replies") as waiter:
            await asyncio.wait_for(bell.connected.wait(), 5)
            await waiter.wait(0.1)  # the "look again" of the first connection
            # ... the view looks and finds nothing; a writer commits now ...
            await ring("t_replies")
            await asyncio.sleep(0.3)  # ... and only then does the view start to wait.
            return await waiter.wait(0.01)

    assert run(scenario)


def test_a_dropped_listen_connection_rings_everyone_and_reconnects() -> None:
    async def scenario(bell: Bell) -> tuple[bool, bool]:
        async with bell.subscribe("t_pix") as waiter:
            await asyncio.wait_for(bell.connected.wait(), 5)
            async with await psycopg.AsyncConnection.connect(conninfo(), autocommit=True) as conn:
                await conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE query LIKE 'LISTEN%%' AND pid <> pg_backend_pid()"
                    " AND datname = current_database()"
                )
            woken = await waiter.wait(3.0)  # everyone looks again after a loss
            await asyncio.wait_for(bell.connected.wait(), 10)
            await asyncio.sleep(0.2)
            await ring("t_pix")
            return woken, await waiter.wait(3.0)

    assert run(scenario) == (True, True)


def test_a_cancelled_waiter_leaves_nothing_behind() -> None:
    async def scenario(bell: Bell) -> int:
        async def wait_forever() -> None:
            async with bell.subscribe("t_console") as waiter:
                while True:  # as a view does: wake, look, wait again
                    await waiter.wait(60)

        task = asyncio.create_task(wait_forever())
        await asyncio.sleep(0.3)
        assert bell.waiting("t_console") == 1
        task.cancel()  # what Django does when the client goes away (L-4)
        with pytest.raises(asyncio.CancelledError):
            await task
        return bell.waiting("t_console")

    assert run(scenario) == 0


def test_simultaneous_first_waiters_of_a_channel_share_one_presence_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """200 long polls arriving at once must not open 200 connections to say "I listen"."""
    calls: list[str] = []
    announce = Bell._announce

    async def counting(self: Bell, channel: str) -> None:
        calls.append(channel)
        await announce(self, channel)

    monkeypatch.setattr(Bell, "_announce", counting)

    async def scenario(bell: Bell) -> tuple[int, bool]:
        entered = asyncio.Event()
        waiting = 0

        async def wait() -> None:
            nonlocal waiting
            async with bell.subscribe("t_herd", key=str(id(asyncio.current_task()))):
                waiting += 1
                if waiting == 50:
                    entered.set()
                await entered.wait()

        await asyncio.wait_for(asyncio.gather(*(wait() for _ in range(50))), 10)
        present = await asyncio.to_thread(
            lambda: Listener.objects.filter(channel="t_herd").exists()
        )
        return waiting, present

    assert run(scenario) == (50, True)
    assert calls == ["t_herd"]
