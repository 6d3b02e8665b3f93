"""The console's event stream: one Server-Sent Events stream per tab (SPEC C-4, C-1, L-1, L-4).

``GET /console/events/?view=...`` (the page's ``stream_params``) answers
``text/event-stream``. The stream:

1. checks the session on every connection, reconnections included: 401 for
   nobody, 403 for a user who is not staff (C-1);
2. takes the position to replay from: the ``Last-Event-ID`` header the
   browser sends when it reconnects, else ``after`` (the position the page
   was rendered at, or the last id a page's script saw);
3. attaches to the process's feed (``feed.Feed``), then, if the page is
   behind the feed, reads what changed in between from the outbox and sends
   the page's fragments once, rendered from the database;
4. for each tick of the feed that changes the page, sends its fragments
   again (``event: patch``), with the tick's position as the event ``id``;
5. sends a heartbeat (``event: heartbeat``, the server's clock, the same
   ``id``) after ``CONSOLE_HEARTBEAT_SECONDS`` without a patch, so proxies
   and NATs keep the connection and the page can tell a dead link;
6. ends after ``CONSOLE_STREAM_MAX_SECONDS``; the browser reconnects at once
   and the session is checked again.

A fragment is rendered from the database, never patched from an event, so a
tick applied twice (the page's position overlaps the stream's) changes
nothing and a tick missed while the link was down is made good by the next
rendering: nothing is missed, nothing is applied twice. Between ticks the
stream holds no database connection; a client that goes away cancels it,
which detaches it from the feed and costs nothing more (L-4).

Framing: every line of a patch gets its own ``data:`` field, the lines split
on CR, LF and CRLF (the three line ends of the SSE grammar), so message text
can never end a field or start an event of its own (C-5).
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from functools import lru_cache

import structlog
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase, StreamingHttpResponse
from django.views.decorators.http import require_GET

from parley.console import db, screens
from parley.console.changes import EVERYTHING, NOTHING, Changes, changes_of
from parley.console.feed import Subscription, feed
from parley.console.views import refusal, viewer
from parley.core.errors import problem_response
from parley.outbox import selectors
from parley.outbox.selectors import Position

log = structlog.get_logger(__name__)

# How long the browser waits before it reconnects (the SSE ``retry`` field).
RETRY_MILLISECONDS = 1_000
# Events a replay reads before it gives up counting and renders everything.
REPLAY_MAX_EVENTS = 20_000
_LINE_END = re.compile(r"\r\n|\r|\n")


def sse(*, event: str, data: str, id: str | None = None) -> str:
    """One SSE event; ``data`` may hold any text, each of its lines its own field."""
    fields = [f"event: {event}"]
    if id is not None:
        fields.append(f"id: {id}")
    fields.extend(f"data: {line}" for line in _LINE_END.split(data))
    return "\n".join(fields) + "\n\n"


def _now_ms() -> str:
    return str(round(time.time() * 1000))


def replay(after: Position, until: Position) -> Changes:
    """What changed between two positions (after, until], read from the outbox."""
    changes = NOTHING
    read = 0
    while after < until:
        events = [e for e in selectors.events_after(after, limit=1_000) if e.position <= until]
        if not events:
            break
        changes = changes | changes_of(events)
        after = events[-1].position
        read += len(events)
        if read >= REPLAY_MAX_EVENTS:
            return EVERYTHING
    return changes


async def _events(screen: screens.Screen, after: Position | None) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MILLISECONDS}\n\n"
    subscription = await feed.attach()
    try:
        async for chunk in _follow(screen, after, subscription):
            yield chunk
    except Exception:
        # A rendering that failed: end the stream; the browser reconnects and replays.
        log.exception("console_stream_failed")
    finally:
        feed.detach(subscription)


async def _follow(
    screen: screens.Screen, after: Position | None, subscription: Subscription
) -> AsyncIterator[str]:
    """Steps 3 to 6 of the module's docstring."""
    started = last_sent = time.monotonic()
    heartbeat = float(settings.CONSOLE_HEARTBEAT_SECONDS)
    lifetime = float(settings.CONSOLE_STREAM_MAX_SECONDS)
    position, seq = subscription.position, subscription.seq
    changes = NOTHING
    if after is not None and after < position:
        changes = await db.background(replay, after, position)
    # The ids sent never go back past what the page already shows.
    floor = after or selectors.START
    if screen.affected_by(changes):
        html = await feed.render(screen.key, seq, screen.render_fragments)
        yield _patch(html, max(position, floor))
    else:
        yield _heartbeat(max(position, floor))
    while (left := started + lifetime - time.monotonic()) > 0:
        if await subscription.wait(min(left, last_sent + heartbeat - time.monotonic())):
            seq, position, changes = subscription.take()
            if screen.affected_by(changes):
                html = await feed.render(screen.key, seq, screen.render_fragments)
                yield _patch(html, max(position, floor))
                last_sent = time.monotonic()
                continue
        if time.monotonic() - last_sent >= heartbeat:
            yield _heartbeat(max(position, floor))
            last_sent = time.monotonic()


@lru_cache(maxsize=64)
def _data_lines(html: str) -> str:
    """A rendering as data fields, framed once for every stream that sends it."""
    return "\n".join(f"data: {line}" for line in _LINE_END.split(html))


def _patch(html: str, position: Position) -> str:
    # As sse() writes it, with the shared rendering framed once.
    return (
        f"event: patch\nid: {selectors.encode(position)}\n"
        f'data: <div data-now="{_now_ms()}">\n{_data_lines(html)}\ndata: </div>\n\n'
    )


def _heartbeat(position: Position) -> str:
    return sse(event="heartbeat", id=selectors.encode(position), data=_now_ms())


def _position(request: HttpRequest) -> Position | None:
    """Where to replay from: the browser's Last-Event-ID, else ``after``; ValueError if bad."""
    text = request.headers.get("Last-Event-ID") or request.GET.get("after") or ""
    return selectors.decode(text) if text else None


@require_GET
async def events(request: HttpRequest) -> HttpResponseBase:
    who = await db.short(viewer, request)
    if who != "staff":
        return refusal(who)
    screen = screens.from_stream_query(request.GET)
    try:
        after = _position(request)
    except ValueError:
        screen = None
    if screen is None:
        return problem_response(
            status=400,
            code="invalid_stream",
            title="Invalid stream",
            detail="Name a console page (view=...) and a position (txid-id), as the page does.",
        )
    response = StreamingHttpResponse(_events(screen, after), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    # nginx: pass each event on at once (the compose proxy also turns buffering off).
    response["X-Accel-Buffering"] = "no"
    return response
