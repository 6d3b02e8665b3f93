"""The long poll of every stream GET (SPEC X-4, X-6, L-1, L-3, L-4).

One request, in order:

1. Subscribe to the kind's bell for the stream's key, before any look at the
   database: a commit that lands after the first look still rings (L-3).
2. The first step, one short transaction: open the stream (``start``) or
   find it by its id and acknowledge (continuation), and try a first claim.
3. While nothing was claimed and the poll time has not run out: wait for the
   bell, then try to claim again. The bell rings for a writer's commit, and
   for the process's own re-check of the keys it waits on (at most every
   1 s, ``watch``), which covers a lost notification. A claim takes what is
   there at once; it never waits to fill a batch (X-4).
4. 200 with the items, or 204 when the poll time is up. The 204 leaves
   ``END_MARGIN`` early, so that with its last step it never exceeds
   ``PIX_POLL_SECONDS`` after arrival.

No connection and no transaction is held while waiting: each step runs in a
thread and gives its connection back when it ends (L-1).

**Answers that never leave.** A request may be cancelled (its client went
away, L-4) while a step runs, or after a claim but before the answer was
handed to the server. Everything it holds is then undone by
``services.answer_withdraw`` in a follow-up of its own, once the step in
progress has ended: the claimed items are pending again (X-6), and a stream
this request opened, whose id nobody learned, is closed. An answer counts as
handed over once the server has taken its body (:class:`HandOverResponse`).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import structlog
from asgiref.sync import sync_to_async
from django.db import connection
from django.http import HttpResponse, StreamingHttpResponse

from parley.live.bell import bell
from parley.streams import metrics, services
from parley.streams.kinds import StreamKind
from parley.streams.negotiation import BATCH, BATCH_LIMIT
from parley.streams.services import Batch, Begun
from parley.streams.watch import watch

log = structlog.get_logger(__name__)

T = TypeVar("T")

# The 204 leaves this much before the poll time: its last step (one short
# transaction) then still ends within PIX_POLL_SECONDS of the arrival.
END_MARGIN_SECONDS = 0.15
# Follow-ups that undo abandoned answers; kept referenced until they end.
_FOLLOW_UPS: set[asyncio.Task[Any]] = set()


def _in_thread(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    try:
        return fn(*args, **kwargs)
    finally:
        # Give the connection back (to the pool, in the live process) between
        # steps: a waiting request holds none (L-1).
        if not connection.in_atomic_block:
            connection.close()


async def run_db(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run a short database step in a worker thread."""
    result: T = await sync_to_async(_in_thread, thread_sensitive=False)(fn, *args, **kwargs)
    return result


class Answer:
    """What one request holds, and the undoing of it if its answer never leaves."""

    def __init__(self, kind: StreamKind) -> None:
        self.kind = kind
        self.stream_id: int | None = None
        self.opened = False  # this request opened the stream: nobody knows its id yet
        self.batch: Batch | None = None
        self._loop = asyncio.get_running_loop()
        self._step: asyncio.Task[Any] | None = None
        self._settled = False

    async def step(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """A step that runs to its end even if the request is cancelled meanwhile
        (``asyncio.shield``); what it takes it records with :meth:`hold`, from its thread."""
        self._step = self._loop.create_task(run_db(fn, *args, **kwargs))
        return await asyncio.shield(self._step)

    def hold(self, *, stream_id: int, batch: Batch | None) -> None:
        """Called by a step as soon as its transaction committed, before anything else."""
        self.stream_id = stream_id
        self.batch = batch

    def handed_over(self) -> None:
        """The server has the answer: from now on nothing is undone."""
        self._settled = True

    def withdraw(self) -> None:
        """Undo, in a follow-up task, what this request holds. Safe from any thread, once."""
        if self._settled:
            return
        self._settled = True
        try:
            self._loop.call_soon_threadsafe(self._spawn_follow_up)
        except RuntimeError:  # the loop is closed: the process is stopping
            log.warning("stream_answer_lost", stream_id=self.stream_id, batch=self.batch)

    def _spawn_follow_up(self) -> None:
        task = self._loop.create_task(self._follow_up())
        _FOLLOW_UPS.add(task)
        task.add_done_callback(_FOLLOW_UPS.discard)

    async def _follow_up(self) -> None:
        step = self._step
        if step is not None and not step.done():
            await asyncio.wait([step])  # the step's result is recorded by then
        if self.stream_id is None or (self.batch is None and not self.opened):
            return
        batch = self.batch
        try:
            released = await run_db(
                services.answer_withdraw,
                stream_id=self.stream_id,
                interaction_id=batch.interaction_id if batch else None,
                abandon=self.opened,
            )
        except Exception:
            log.exception("stream_withdraw_failed", stream_id=self.stream_id)
            return
        metrics.RELEASED.labels(kind=self.kind.name).inc(released)
        log.info(
            "stream_answer_withdrawn",
            stream_id=self.stream_id,
            released=released,
            abandoned=self.opened,
        )


class HandOverResponse(StreamingHttpResponse):
    """A complete body whose hand-over to the server is observed.

    Django sends a streaming body chunk by chunk and asks for the next one
    only once ``send`` has returned; the body here is one chunk, so reaching
    the code after it means the server took the answer. If the request ends
    otherwise (cancelled while sending, or before it), :meth:`close` or the
    response's finalisation withdraws the answer.
    """

    def __init__(self, body: bytes, *, status: int, answer: Answer, headers: dict[str, str]):
        super().__init__(_one_chunk(body, answer), status=status, headers=headers)
        if status == 204:
            del self.headers["Content-Type"]
        else:
            self.headers["Content-Type"] = "application/json"
            self.headers["Content-Length"] = str(len(body))
        self._answer = answer
        weakref.finalize(self, answer.withdraw)

    def close(self) -> None:
        """Django calls this once the request is over, whether the body left or not."""
        super().close()
        self._answer.withdraw()


async def _one_chunk(body: bytes, answer: Answer) -> Any:
    yield body
    answer.handed_over()


async def serve(
    *,
    kind: StreamKind,
    key: str,
    media_type: str,
    begin: Callable[..., Begun],
    begin_kwargs: dict[str, Any],
    opens: bool,
) -> HttpResponse | StreamingHttpResponse:
    """Answer one GET of a stream: 200 with its items, or 204 when the poll time is up.

    ``begin`` is the first step (``services.stream_start`` or
    ``stream_resume``), called with ``begin_kwargs`` plus ``limit``; errors
    it raises (404, 410, 429) leave with nothing held.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + kind.poll_seconds - END_MARGIN_SECONDS
    limit = BATCH_LIMIT if media_type == BATCH else 1
    answer = Answer(kind)
    answer.opened = opens
    try:
        async with bell.subscribe(kind.channel, kind.bell_key(key)) as waiter:
            with watch(kind).watching(key):
                items = await answer.step(_begin, answer, begin, {**begin_kwargs, "limit": limit})
                assert answer.stream_id is not None
                while items is None:
                    remaining = deadline - loop.time()
                    # The bell rings for a writer's commit, or for the process's
                    # re-check that found items for this key (watch.py).
                    if remaining <= 0 or not await waiter.wait(remaining):
                        break
                    if deadline - loop.time() <= 0:
                        break
                    items = await answer.step(_claim, answer, key=key, limit=limit)
            if items is None:
                interaction_id = await answer.step(
                    services.stream_finish, kind=kind, stream_id=answer.stream_id
                )
                status, body = 204, b""
            else:
                assert answer.batch is not None
                interaction_id = answer.batch.interaction_id
                status = 200
                body = kind.encode(items if media_type == BATCH else items[0])
    except BaseException:
        # Cancelled (the client went away) or failed: undo what is held.
        answer.withdraw()
        raise
    metrics.ANSWERS.labels(kind=kind.name, status=str(status)).inc()
    if items:
        metrics.DELIVERED.labels(kind=kind.name).inc(len(items))
    headers = {"Pull-Next": kind.pull_next(key, interaction_id), "Cache-Control": "no-store"}
    if answer.batch is None and not opens:
        answer.handed_over()  # a 204 of a known stream holds nothing
        return HttpResponse(status=204, headers=headers)
    return HandOverResponse(body, status=status, answer=answer, headers=headers)


# --- The steps, each run in a worker thread in one go -------------------------------------


def _begin(answer: Answer, begin: Callable[..., Begun], kwargs: dict[str, Any]) -> list[Any] | None:
    """The first transaction (open or find the stream, a first claim), then the items."""
    begun = begin(**kwargs)
    answer.hold(stream_id=begun.stream_id, batch=begun.batch)
    return _rendered(answer)


def _claim(answer: Answer, *, key: str, limit: int) -> list[Any] | None:
    assert answer.stream_id is not None
    batch = services.stream_claim(
        kind=answer.kind, stream_id=answer.stream_id, key=key, limit=limit
    )
    answer.hold(stream_id=answer.stream_id, batch=batch)
    return _rendered(answer)


def _rendered(answer: Answer) -> list[Any] | None:
    """The claimed items, rendered; None when nothing was claimed."""
    batch = answer.batch
    if batch is None:
        return None
    items = answer.kind.render(batch.item_ids)
    if items:
        return items
    # Every item vanished between the claim and now (a conversation deleted by
    # an operator): give the claim back and keep waiting.
    assert answer.stream_id is not None
    services.answer_withdraw(
        stream_id=answer.stream_id, interaction_id=batch.interaction_id, abandon=False
    )
    answer.hold(stream_id=answer.stream_id, batch=None)
    return None
