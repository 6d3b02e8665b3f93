"""The long poll's promises (SPEC L-1, L-4, X-6): nothing held while waiting, nothing lost
when a client goes away, whenever it goes."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any

import psycopg
import pytest
from django.db import connection

from parley.live.bell import conninfo
from parley.streams import services
from parley.streams.models import Interaction, PixMessage, Stream
from parley.streams.pix.kind import PixKind
from parley.streams.pix.services import messages_generate
from parley.streams.tests.live import LiveClient

pytestmark = pytest.mark.django_db(transaction=True)

ISPB = "00000000"
START = f"/api/pix/{ISPB}/stream/start"


def pending() -> int:
    return PixMessage.objects.filter(delivered_at__isnull=True).count()


def disconnecting(live: LiveClient, path: str, *, after: float) -> Any:
    """GET ``path``; the client goes away ``after`` seconds."""

    async def scenario() -> Any:
        gone = asyncio.Event()
        asyncio.get_running_loop().call_later(after, gone.set)
        return await live.call("GET", path, headers={"Accept": "multipart/json"}, disconnect=gone)

    return live.run(scenario())


def test_a_start_whose_client_leaves_mid_wait_claims_nothing_and_frees_its_slot(
    live: LiveClient, settings: Any
) -> None:
    settings.PIX_POLL_SECONDS = 5.0

    reply = disconnecting(live, START, after=0.3)

    assert reply.status == 0  # nothing was sent: the view was cancelled
    assert reply.seconds < 2
    stream = Stream.objects.get()
    assert stream.close_reason == "abandoned"  # nobody ever learned its id
    messages_generate(ispb=ISPB, count=1)
    assert pending() == 1


def test_a_continuation_whose_client_leaves_mid_wait_claims_nothing(
    live: LiveClient, settings: Any
) -> None:
    settings.PIX_POLL_SECONDS = 0.3
    path = live.get(START).headers["pull-next"]
    settings.PIX_POLL_SECONDS = 5.0

    reply = disconnecting(live, path, after=0.3)

    assert reply.status == 0
    assert Stream.objects.get().closed_at is None  # the stream itself lives on
    messages_generate(ispb=ISPB, count=2)
    assert pending() == 2
    settings.PIX_POLL_SECONDS = 0.3
    assert len(live.get(path, accept="multipart/json").json()) == 2


def test_a_claim_whose_client_left_before_the_answer_went_out_is_released(
    live: LiveClient, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client goes away after the claim committed, while the answer is being built."""
    messages_generate(ispb=ISPB, count=3)
    claimed, finish = threading.Event(), threading.Event()
    render = PixKind.render

    def slow_render(self: PixKind, ids: Sequence[int]) -> list[Any]:
        claimed.set()
        finish.wait(5)
        return render(self, ids)

    monkeypatch.setattr(PixKind, "render", slow_render)

    async def scenario() -> Any:
        gone = asyncio.Event()

        async def leave() -> None:
            await asyncio.to_thread(claimed.wait, 5)
            gone.set()  # the view is cancelled while its render step runs on...
            await asyncio.sleep(0.2)
            finish.set()  # ...and the step's end hands the claim to the follow-up

        leaving = asyncio.ensure_future(leave())
        reply = await live.call("GET", START, headers={"Accept": "multipart/json"}, disconnect=gone)
        await leaving
        return reply

    reply = live.run(scenario())

    assert reply.status == 0
    assert pending() == 3  # released, for another collector
    assert not Interaction.objects.exists()  # the id that never left is forgotten
    stream = Stream.objects.get()
    assert (stream.close_reason, stream.delivered_count) == ("abandoned", 0)
    monkeypatch.setattr(PixKind, "render", render)
    settings.PIX_POLL_SECONDS = 0.3
    assert len(live.get(START, accept="multipart/json").json()) == 3


def test_an_answer_lost_while_being_sent_is_released(live: LiveClient, settings: Any) -> None:
    """The body was handed to a server whose client had gone: the send never completed."""
    settings.PIX_POLL_SECONDS = 0.3
    path = live.get(START).headers["pull-next"]
    messages_generate(ispb=ISPB, count=2)

    async def scenario() -> Any:
        gone = asyncio.Event()

        async def on_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                gone.set()  # the connection drops while the body is being written
                await asyncio.sleep(1)

        return await live.call(
            "GET", path, headers={"Accept": "multipart/json"}, disconnect=gone, on_send=on_send
        )

    reply = live.run(scenario())

    assert reply.status == 200  # the head went out; the body never arrived
    assert pending() == 2
    assert Stream.objects.get().closed_at is None
    nxt = live.get(path, accept="multipart/json")
    assert len(nxt.json()) == 2


def test_an_answer_that_went_out_is_kept(live: LiveClient) -> None:
    messages_generate(ispb=ISPB, count=1)

    reply = live.get(START)

    assert reply.status == 200
    assert pending() == 0
    assert Stream.objects.get().delivered_count == 1


def test_waiting_requests_hold_no_database_connection(live: LiveClient, settings: Any) -> None:
    """Twenty long polls wait; the only connection of theirs is the bell's LISTEN (L-1)."""
    if connection.vendor != "postgresql":
        pytest.skip("counts PostgreSQL sessions")
    settings.PIX_POLL_SECONDS = 2.0
    database = connection.settings_dict["NAME"]

    def sessions() -> int:
        with psycopg.connect(conninfo(), autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                [database],
            ).fetchone()
            assert row is not None
            return int(row[0])

    before = sessions()

    async def scenario() -> tuple[int, list[Any]]:
        polls = [asyncio.ensure_future(live.call("GET", START)) for _ in range(6)]
        polls += [
            asyncio.ensure_future(live.call("GET", f"/api/pix/{n:08d}/stream/start"))
            for n in range(1, 15)
        ]
        await asyncio.sleep(1.0)
        during = await asyncio.to_thread(sessions)
        return during, await asyncio.gather(*polls)

    during, replies = live.run(scenario())

    assert [r.status for r in replies] == [204] * 20
    assert during - before <= 1, (before, during)


def test_a_message_whose_bell_never_rang_is_found_by_the_re_check(
    live: LiveClient, settings: Any
) -> None:
    """L-3: the database is the truth; a lost notification costs at most the re-check."""
    settings.PIX_POLL_SECONDS = 5.0

    async def scenario() -> tuple[Any, float]:
        waiting = asyncio.ensure_future(live.call("GET", START))
        await asyncio.sleep(0.3)
        # Stored without ringing, as if the notification were lost.
        await asyncio.to_thread(_store_silently)
        stored_at = asyncio.get_running_loop().time()
        reply = await waiting
        return reply, asyncio.get_running_loop().time() - stored_at

    reply, after = live.run(scenario())

    assert reply.status == 200
    assert after <= settings.LIVE_RECHECK_SECONDS + 0.75


def _store_silently() -> None:
    try:
        messages = PixMessage.objects.filter(recebedor_ispb="99999999")
        messages_generate(ispb="99999999", count=1)
        messages.update(recebedor_ispb=ISPB)  # no ring for ISPB
    finally:
        connection.close()


def test_waiting_requests_share_one_re_check_per_process(
    live: LiveClient, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twenty waiters: the idle cost is one query per re-check, not twenty."""
    settings.PIX_POLL_SECONDS = 2.0
    checks: list[list[str]] = []
    claims: list[int] = []
    pending_keys = services.pending_keys
    stream_claim = services.stream_claim

    def counting_checks(**kwargs: Any) -> list[str]:
        checks.append(kwargs["keys"])
        return pending_keys(**kwargs)

    def counting_claims(**kwargs: Any) -> Any:
        claims.append(kwargs["stream_id"])
        return stream_claim(**kwargs)

    monkeypatch.setattr(services, "pending_keys", counting_checks)
    monkeypatch.setattr(services, "stream_claim", counting_claims)

    async def scenario() -> list[int]:
        replies = await asyncio.gather(
            *(live.call("GET", f"/api/pix/{n:08d}/stream/start") for n in range(1, 21))
        )
        return [r.status for r in replies]

    assert live.run(scenario()) == [204] * 20
    rounds = 2.0 / settings.LIVE_RECHECK_SECONDS
    assert 1 <= len(checks) <= rounds + 1, checks
    assert all(len(keys) == 20 for keys in checks[:-1])
    # Nothing was pending, so nobody was rung, but for the bell's own "look again"
    # when its LISTEN connection (re)starts: at most one claim per waiter.
    assert max(Counter(claims).values(), default=0) <= 1, claims
