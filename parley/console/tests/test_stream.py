"""The console's event stream, through the ASGI application in process (C-1, C-4, C-5, L-1, L-4)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from parley.console import db, screens, stream
from parley.console.feed import feed
from parley.console.tests.conftest import MakeConversation
from parley.console.tests.sse import Stream, parse
from parley.conversations import services
from parley.conversations.models import Conversation
from parley.live.models import Listener
from parley.outbox import selectors
from parley.outbox.services import OUTBOX_CHANNEL

T = TypeVar("T")


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        try:
            return await scenario()
        finally:
            await feed.stop()
            from parley.live.bell import bell

            await bell.stop()

    return asyncio.run(main())


def cookie(client: Client) -> dict[str, str]:
    return {"Cookie": f"sessionid={client.cookies['sessionid'].value}"}


async def position() -> str:
    return selectors.encode(await db.short(selectors.current_position))


async def say(conversation_id: uuid.UUID, content: str) -> uuid.UUID:
    message_id = uuid.uuid4()
    await db.short(
        services.message_ingest,
        message_id=message_id,
        conversation_id=conversation_id,
        content=content,
        timestamp=timezone.now(),
    )
    return message_id


async def open_conversation() -> uuid.UUID:
    conversation_id = uuid.uuid4()
    await db.short(services.conversation_open, conversation_id=conversation_id)
    return conversation_id


# --- framing (C-5) --------------------------------------------------------------------------


def test_every_line_of_the_data_is_a_field_of_its_own_whatever_its_line_end() -> None:
    text = stream.sse(event="patch", id="1-2", data="a\r\nb\rc\nd\r\n\r\nevent: forged\ndata: x")

    events = parse(text)

    assert len(events) == 1
    assert events[0].event == "patch"
    assert events[0].id == "1-2"
    assert events[0].data == "a\nb\nc\nd\n\nevent: forged\ndata: x"


def test_a_rendered_patch_with_framing_tricks_in_a_message_stays_one_event(
    make_conversation: MakeConversation,
) -> None:
    trick = "hi\r\n\r\nevent: patch\r\nid: 9-9\r\ndata: <img src=x onerror=alert(1)>\r\n\r\n"
    conversation = make_conversation(trick, "\rdata: lone CR\r")
    html = screens.ConversationDetail(conversation.pk).render_fragments()

    events = parse(stream._patch(html, (0, 1)))

    assert [(e.event, e.id) for e in events] == [("patch", "0-1")]
    assert "&lt;img src=x onerror=alert(1)&gt;" in events[0].data
    assert "<img" not in events[0].data


# --- who may connect (C-1) ---------------------------------------------------------------------


@pytest.mark.parametrize("reconnect", [False, True])
def test_the_stream_refuses_a_visitor_and_a_user_who_is_not_staff_on_every_connection(
    other_client: Client, reconnect: bool
) -> None:
    headers = {"Last-Event-ID": "0-0"} if reconnect else {}

    async def scenario() -> tuple[int, int, str]:
        async with Stream("/console/events/?view=conversations", headers) as anonymous:
            pass
        async with Stream(
            "/console/events/?view=conversations", {**headers, **cookie(other_client)}
        ) as other:
            pass
        return anonymous.status, other.status, anonymous.response_headers["content-type"]

    assert run(scenario) == (401, 403, "application/problem+json")


@pytest.mark.parametrize(
    "query",
    [
        "view=nothing",
        "view=conversation&id=nope",
        "view=panel&name=nope",
        "view=conversations&after=x-1",
    ],
)
def test_a_stream_of_nothing_or_from_a_bad_position_is_a_400(
    staff_client: Client, query: str
) -> None:
    async def scenario() -> int:
        async with Stream(f"/console/events/?{query}", cookie(staff_client)) as s:
            return s.status

    assert run(scenario) == 400


def test_the_stream_is_unbuffered_uncached_and_never_compressed(staff_client: Client) -> None:
    async def scenario() -> tuple[Stream, str]:
        headers = {**cookie(staff_client), "Accept-Encoding": "gzip, br"}
        async with Stream("/console/events/?view=conversations", headers) as s:
            first = await s.next_event()
            return s, first.event

    s, first = run(scenario)
    assert s.status == 200
    assert s.response_headers["content-type"] == "text/event-stream"
    assert s.response_headers["cache-control"] == "no-cache"
    assert s.response_headers["x-accel-buffering"] == "no"
    assert "content-encoding" not in s.response_headers
    assert first == "heartbeat"


# --- replay and live changes (C-4) ----------------------------------------------------------------


def test_a_page_behind_gets_what_it_missed_in_one_patch_from_last_event_id(
    staff_client: Client,
) -> None:
    async def scenario() -> tuple[str, str, str]:
        seen = await position()
        conversation_id = await open_conversation()
        await say(conversation_id, "said while the page was away")
        # The browser's own reconnection sends Last-Event-ID; it wins over ?after.
        # (Were ?after used, nothing would come: the events are older than it.)
        headers = {**cookie(staff_client), "Last-Event-ID": seen}
        async with Stream(
            f"/console/events/?view=conversations&after={await position()}", headers
        ) as s:
            # The first event, unless the rows were still behind a transaction
            # running elsewhere when the stream started: then the feed's next tick.
            while (event := await s.next_event()).event != "patch":
                pass
            return event.event, event.data, event.id or ""

    kind, data, event_id = run(scenario)
    assert kind == "patch"
    assert "said while the page was away" in data
    assert data.startswith('<div data-now="')
    assert selectors.decode(event_id) > selectors.decode(selectors.encode((0, 0)))


def test_a_page_that_is_up_to_date_gets_each_change_as_it_happens(
    staff_client: Client,
) -> None:
    async def scenario() -> tuple[str, float, str]:
        conversation_id = await open_conversation()
        url = f"/console/events/?view=conversation&id={conversation_id}&after={await position()}"
        async with Stream(url, cookie(staff_client)) as s:
            # A heartbeat; or a patch, when the opening committed beside another
            # transaction still running: the page's position may overlap the stream's.
            hello = await s.next_event()
            started = time.monotonic()
            await say(conversation_id, "hello, live")
            while "hello, live" not in (patch := await s.next_event(timeout=5)).data:
                pass
            return hello.event, time.monotonic() - started, patch.data

    hello, took, data = run(scenario)
    assert hello in ("heartbeat", "patch")
    assert took < 1.0, f"took {took:.2f} s"  # C-4: within a second
    assert 'id="conversation-meta"' in data
    assert 'id="conversation-thread"' in data
    assert 'class="countdown" data-due="' in data


def test_a_burst_of_changes_becomes_a_few_patches_that_end_with_all_of_them(
    staff_client: Client,
) -> None:
    async def scenario() -> list[Any]:
        conversation_id = await open_conversation()
        url = f"/console/events/?view=conversation&id={conversation_id}&after={await position()}"
        async with Stream(url, cookie(staff_client)) as s:
            await s.next_event()
            for n in range(40):
                await say(conversation_id, f"burst {n}")
            return [e for e in await s.events_for(2.0) if e.event == "patch"]

    patches = run(scenario)
    assert 1 <= len(patches) < 20
    assert "burst 39" in patches[-1].data
    ids = [selectors.decode(p.id) for p in patches]
    assert ids == sorted(ids)


def test_a_thread_is_patched_only_for_its_own_conversation(staff_client: Client) -> None:
    async def scenario() -> tuple[int, list[str]]:
        mine, other = await open_conversation(), await open_conversation()
        url = f"/console/events/?view=conversation&id={mine}&after={await position()}"
        async with Stream(url, cookie(staff_client)) as s:
            # Caught up: the events before this one (in commit order) came with it or before.
            await say(mine, "warming up")
            while "warming up" not in (await s.next_event()).data:
                pass
            await say(other, "not for this page")
            quiet = [e for e in await s.events_for(1.0) if e.event == "patch"]
            await say(mine, "for this page")
            patch = await s.next_event()
            return len(quiet), [patch.event, patch.data]

    quiet, (kind, data) = run(scenario)
    assert quiet == 0
    assert kind == "patch"
    assert "for this page" in data
    assert "not for this page" not in data


def panel_patch_when_a_conversation_opens(client: Client, panel: str) -> str:
    """The patch a panel's stream sends when a conversation opens (conversation.opened)."""

    async def scenario() -> str:
        url = f"/console/events/?view=panel&name={panel}&after={await position()}"
        async with Stream(url, cookie(client)) as s:
            await s.next_event()
            await open_conversation()
            while (event := await s.next_event()).event != "patch":
                pass
            return event.data

    return run(scenario)


def test_a_panel_is_patched_for_the_events_it_watches(staff_client: Client) -> None:
    data = panel_patch_when_a_conversation_opens(staff_client, "events")

    assert 'id="panel-events"' in data
    assert "conversation.opened" in data


def test_by_default_open_consoles_make_no_writer_notify(staff_client: Client) -> None:
    """Nobody listens on the outbox's channel: its writes send no NOTIFY (README says why)."""

    async def scenario() -> bool:
        async with Stream("/console/events/?view=conversations", cookie(staff_client)) as s:
            await s.next_event()
            return await db.short(lambda: Listener.objects.filter(channel=OUTBOX_CHANNEL).exists())

    assert run(scenario) is False


def test_with_wake_on_notify_the_feed_is_rung_by_the_commit(
    staff_client: Client, settings: Any
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the bell is PostgreSQL's LISTEN/NOTIFY")
    settings.CONSOLE_WAKE_ON_NOTIFY = True

    async def scenario() -> tuple[float, bool]:
        conversation_id = await open_conversation()
        url = f"/console/events/?view=conversation&id={conversation_id}&after={await position()}"
        async with Stream(url, cookie(staff_client)) as s:
            await s.next_event()
            listening = await db.short(
                lambda: Listener.objects.filter(channel=OUTBOX_CHANNEL).exists()
            )
            started = time.monotonic()
            await say(conversation_id, "rung")
            while "rung" not in (await s.next_event()).data:
                pass
            return time.monotonic() - started, listening

    took, listening = run(scenario)
    assert listening  # so writers notify
    assert took < 1.0, f"took {took:.2f} s"


def test_heartbeats_carry_the_server_clock_and_the_position(
    staff_client: Client, settings: Any
) -> None:
    settings.CONSOLE_HEARTBEAT_SECONDS = 0.3

    async def scenario() -> list[Any]:
        async with Stream("/console/events/?view=conversations", cookie(staff_client)) as s:
            return await s.events_for(1.0)

    events = run(scenario)
    beats = [e for e in events if e.event == "heartbeat"]
    assert len(beats) >= 3
    assert all(abs(int(e.data) / 1000 - time.time()) < 5 for e in beats)
    assert all(e.id for e in beats)


def test_a_stream_ends_after_its_lifetime_so_the_session_is_checked_again(
    staff_client: Client, settings: Any
) -> None:
    settings.CONSOLE_STREAM_MAX_SECONDS = 0.5

    async def scenario() -> tuple[bool, float]:
        started = time.monotonic()
        async with Stream("/console/events/?view=conversations", cookie(staff_client)) as s:
            await s.text(timeout=3)
            return s.ended, time.monotonic() - started

    ended, took = run(scenario)
    assert ended
    assert took < 2.5


# --- costs (L-1, L-4) ------------------------------------------------------------------------


def test_streams_of_one_page_share_one_rendering(
    staff_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    renders = []
    original = screens.ConversationList.render_fragments

    def counted(self: screens.ConversationList) -> str:
        renders.append(time.monotonic())
        return original(self)

    monkeypatch.setattr(screens.ConversationList, "render_fragments", counted)

    async def scenario() -> list[list[str]]:
        url = f"/console/events/?view=conversations&after={await position()}"
        async with Stream(url, cookie(staff_client)) as a, Stream(url, cookie(staff_client)) as b:
            await a.next_event()
            await b.next_event()
            renders.clear()  # the first events may have been rendered too (an overlap)
            conversation_id = await open_conversation()
            got = [await a.next_event(), await b.next_event()]
            return [[e.event, e.data] for e in got] + [[str(conversation_id), ""]]

    (a_kind, a_data), (b_kind, b_data), (conversation_id, _) = run(scenario)
    assert a_kind == b_kind == "patch"
    assert conversation_id in a_data
    assert a_data.split(">", 1)[1] == b_data.split(">", 1)[1]  # the same fragments
    assert len(renders) == 1


def test_a_client_that_goes_away_leaves_the_feed(staff_client: Client) -> None:
    async def scenario() -> tuple[int, int]:
        async with Stream("/console/events/?view=conversations", cookie(staff_client)) as s:
            await s.next_event()
            during = feed.attached
        await asyncio.sleep(0)
        return during, feed.attached

    assert run(scenario) == (1, 0)


def test_waiting_streams_hold_no_database_connection(staff_client: Client) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("counts PostgreSQL backends")
    database = connection.settings_dict["NAME"]

    def backends() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                [database],
            )
            return int(cursor.fetchone()[0])

    async def scenario() -> tuple[int, int]:
        before = await db.short(backends)
        urls = [f"/console/events/?view=conversations&q=n{n}" for n in range(8)]
        streams = [Stream(url, cookie(staff_client)) for url in urls]
        for s in streams:
            await s.__aenter__()
            await s.next_event()
        await asyncio.sleep(1.0)
        during = await db.short(backends)
        for s in streams:
            await s.__aexit__(None, None, None)
        return before, during

    before, during = run(scenario)
    # The bell's LISTEN connection, nothing per stream.
    assert during - before <= 1
    assert Conversation.objects.count() == 0
