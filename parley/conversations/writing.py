"""Calling the reply writer (G-7, G-8): a time limit per call, many calls at a time
for an ``async def`` writer, and what a failure is called.

:func:`writer_calls` gives a :class:`WriterCalls` for the configured writer.
``submit`` starts one call and returns a future of the reply text; the
caller (a sweep batch, a runner, the one-group path) records each result as
it ends. Calls never touch the database, so every database step stays on the
caller's thread and connection.

- A plain function is called right away in the calling thread, one call at
  a time: ``submit`` returns a finished future. In the main thread (Celery's
  prefork pool runs tasks there) the time limit interrupts the call with
  ``SIGALRM``, as Celery's own soft time limit does, so a stuck HTTP call is
  unwound rather than left running; any alarm already set (pytest-timeout's)
  keeps its deadline. Elsewhere the call runs to its end, and the lease still
  keeps a second reply out (G-3).
- An ``async def`` writer runs on one event loop per process, in a thread of
  its own, at most ``REPLY_ASYNC_CONCURRENCY`` calls at a time; the time limit
  cancels the call (``asyncio.wait_for``).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, Protocol, TypeVar, cast

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from parley.conversations.replies import ReplyRequest, get_reply_writer, is_async_writer
from parley.core import metrics

T = TypeVar("T")
AsyncWriter = Callable[[ReplyRequest], Coroutine[Any, Any, Any]]
# Longest error text stored on a group and sent in its reply.failed event.
ERROR_MAX_CHARS = 300


class WriterTimeout(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"timed out after {seconds:g} s")


class WriterResultError(ValueError):
    """The writer returned something that cannot be stored as a reply."""


class WriterCalls(Protocol):
    """Used as a context manager around a batch of calls (``with writer_calls() as calls``)."""

    capacity: int  # calls this object runs at a time

    def submit(self, request: ReplyRequest) -> Future[str]: ...

    def __enter__(self) -> WriterCalls: ...

    def __exit__(self, *exc: object) -> None: ...


def writer_calls() -> WriterCalls:
    """Calls of the configured writer (``REPLY_WRITER``), with the configured limits."""
    writer = get_reply_writer()
    timeout = settings.REPLY_WRITER_TIMEOUT.total_seconds()
    if is_async_writer(writer):
        return AsyncWriterCalls(
            cast(AsyncWriter, writer), timeout=timeout, capacity=settings.REPLY_ASYNC_CONCURRENCY
        )
    return SyncWriterCalls(writer, timeout=timeout)


def checked(content: object) -> str:
    """The reply text, or WriterResultError: text, not blank, and storable (no NUL)."""
    if not isinstance(content, str):
        raise WriterResultError(f"the writer returned {type(content).__name__}, not text")
    if not content.strip():
        raise WriterResultError("the writer returned blank text")
    if "\x00" in content:
        raise WriterResultError("the writer's text contains a NUL character")
    return content


class SyncWriterCalls:
    """A plain function, called in the caller's thread, one call at a time.

    Inside ``with``, one timer serves every call of the batch (a call costs no
    system call for its limit); outside, each call sets its own.
    """

    capacity = 1

    def __init__(self, writer: Callable[[ReplyRequest], Any], *, timeout: float) -> None:
        self.writer = writer
        self.timeout = timeout
        self._timer = _CallTimer(timeout)

    def __enter__(self) -> SyncWriterCalls:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.stop()

    def submit(self, request: ReplyRequest) -> Future[str]:
        future: Future[str] = Future()
        future.set_running_or_notify_cancel()
        started = time.perf_counter()
        metrics.REPLY_WRITERS_ACTIVE.inc()
        error: Exception | None = None
        try:
            future.set_result(checked(self._timer.call(lambda: self.writer(request))))
        except SoftTimeLimitExceeded:
            # The task's own limit: let the task end; the group's lease brings it back.
            raise
        except Exception as exc:
            error = exc
            future.set_exception(exc)
        finally:
            metrics.REPLY_WRITERS_ACTIVE.dec()
            _observe(error, started)
        return future


class AsyncWriterCalls:
    """An ``async def`` writer, on this process's writer event loop, ``capacity`` at a time."""

    def __init__(
        self,
        writer: AsyncWriter,
        *,
        timeout: float,
        capacity: int,
    ) -> None:
        self.writer = writer
        self.timeout = timeout
        self.capacity = capacity
        self._slots = threading.BoundedSemaphore(capacity)

    def __enter__(self) -> AsyncWriterCalls:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def submit(self, request: ReplyRequest) -> Future[str]:
        """Start a call; waits for a free slot when ``capacity`` calls are running."""
        self._slots.acquire()
        future = asyncio.run_coroutine_threadsafe(self._call(request), _event_loop())
        future.add_done_callback(lambda _: self._slots.release())
        return future

    async def _call(self, request: ReplyRequest) -> str:
        started = time.perf_counter()
        metrics.REPLY_WRITERS_ACTIVE.inc()
        error: BaseException | None = None
        try:
            return checked(await asyncio.wait_for(self.writer(request), self.timeout))
        except TimeoutError as exc:
            error = WriterTimeout(self.timeout)
            raise error from exc
        except BaseException as exc:
            error = exc
            raise
        finally:
            metrics.REPLY_WRITERS_ACTIVE.dec()
            _observe(error, started)


def _observe(error: BaseException | None, started: float) -> None:
    result = "ok" if error is None else "timeout" if isinstance(error, WriterTimeout) else "error"
    metrics.REPLY_WRITER_CALLS.labels(result=result).inc()
    metrics.REPLY_WRITER_SECONDS.observe(time.perf_counter() - started)


# --- The time limit of a plain function: SIGALRM in the main thread ----------------


class _CallTimer:
    """Per-call time limits for calls made one after another in the main thread.

    One ``ITIMER_REAL`` timer, armed at most ``seconds`` ahead: when it fires
    during a call past that call's deadline, WriterTimeout is raised in it;
    otherwise it is armed again for the current call's deadline (or another
    ``seconds``). A call therefore only records its deadline. An alarm set
    before (pytest-timeout's, say) keeps its deadline and its handler, and is
    restored afterwards. Elsewhere than the main thread, calls run unlimited.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline: float | None = None  # of the call running now
        self.installed = False
        self.outer_handler: Any = None
        self.outer_deadline: float | None = None
        self.outer_interval = 0.0

    def start(self) -> None:
        if threading.current_thread() is not threading.main_thread() or not hasattr(
            signal, "setitimer"
        ):
            return
        self.outer_handler = signal.getsignal(signal.SIGALRM)
        delay, self.outer_interval = signal.setitimer(signal.ITIMER_REAL, 0)
        self.outer_deadline = time.monotonic() + delay if delay > 0 else None
        signal.signal(signal.SIGALRM, self._on_alarm)
        self.installed = True
        self._arm(time.monotonic() + self.seconds)

    def stop(self) -> None:
        if not self.installed:
            return
        self.installed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.outer_handler)
        if self.outer_deadline is not None:
            remaining = max(self.outer_deadline - time.monotonic(), 0.001)
            signal.setitimer(signal.ITIMER_REAL, remaining, self.outer_interval)

    def call(self, call: Callable[[], T]) -> T:
        if not self.installed:
            self.start()
            if not self.installed:  # not the main thread
                return call()
            try:
                return self.call(call)
            finally:
                self.stop()
        self.deadline = time.monotonic() + self.seconds
        try:
            return call()
        finally:
            self.deadline = None

    def _arm(self, at: float) -> None:
        if self.outer_deadline is not None:
            at = min(at, self.outer_deadline)
        signal.setitimer(signal.ITIMER_REAL, max(at - time.monotonic(), 0.001))

    def _on_alarm(self, signum: int, frame: Any) -> None:
        now = time.monotonic()
        if self.outer_deadline is not None and now >= self.outer_deadline - 0.001:
            self.outer_deadline = None
            self._arm(self.deadline if self.deadline is not None else now + self.seconds)
            if callable(self.outer_handler):
                self.outer_handler(signum, frame)
            return
        if self.deadline is not None and now >= self.deadline - 0.001:
            self.deadline = None
            self._arm(now + self.seconds)
            raise WriterTimeout(self.seconds)
        self._arm(self.deadline if self.deadline is not None else now + self.seconds)


def _with_time_limit(call: Callable[[], T], seconds: float) -> T:
    """``call()``, interrupted by WriterTimeout after ``seconds`` (main thread only)."""
    return _CallTimer(seconds).call(call)


# --- The event loop of async writers: one per process, in its own thread ---------

_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _event_loop() -> asyncio.AbstractEventLoop:
    """This process's writer loop, started on first use.

    It outlives each task, so a writer may keep an HTTP client (and its
    connection pool) between calls.
    """
    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(
                target=loop.run_forever, name="parley-reply-writers", daemon=True
            ).start()
            _loop = loop
        return _loop


def _forget_loop_after_fork() -> None:
    # A forked child inherits the loop object but not its thread.
    global _loop, _loop_lock
    _loop = None
    _loop_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_loop_after_fork)


# --- What a failure is called ------------------------------------------------------

_URL = re.compile(r"\b([a-z][a-z0-9+.-]*://)(?:[^\s/@]+@)?([^\s?#]*)(?:\?[^\s#]*)?(#\S*)?", re.I)
_SECRET_ASSIGNMENT = re.compile(
    r"\b(authorization|proxy-authorization|api[_-]?key|x-api-key|access[_-]?token|token|"
    r"secret|password|passwd|pwd|cookie)\b(['\"]?\s*[:=]\s*['\"]?)"
    r"(?:(?:bearer|basic|token)\s+)?[^\s'\",;]+",
    re.I,
)
_SCHEME_CREDENTIALS = re.compile(r"\b(bearer|basic)(\s+)[^\s'\",;]+", re.I)
_KEY_LIKE = re.compile(
    r"\b(?:sk|pk|rk|sess|xox[abposr]|ghp|gho|ghs|glpat|hf|AKIA)[-_]?[A-Za-z0-9_\-]{12,}\b"
)
_LONG_TOKEN = re.compile(r"\b(?![0-9a-f]{8}-[0-9a-f]{4}-)[A-Za-z0-9+/_\-]{40,}={0,2}")


def describe_error(exc: BaseException) -> str:
    """A short, single-line account of a writer failure, safe to store and show.

    The exception's class and the first line of its message, with what looks
    like a credential taken out: URL user info and query strings (where API
    keys travel), ``key=value`` and ``Authorization: ...`` pairs, and
    key-shaped tokens. At most ERROR_MAX_CHARS characters.
    """
    if isinstance(exc, WriterTimeout):
        return str(exc)
    lines = str(exc).strip().splitlines()
    text = lines[0].strip() if lines else ""
    text = _URL.sub(lambda m: m.group(1) + m.group(2), text)
    text = _SECRET_ASSIGNMENT.sub(lambda m: f"{m.group(1)}{m.group(2)}[redacted]", text)
    text = _SCHEME_CREDENTIALS.sub(lambda m: f"{m.group(1)}{m.group(2)}[redacted]", text)
    text = _KEY_LIKE.sub("[redacted]", text)
    text = _LONG_TOKEN.sub("[redacted]", text)
    name = type(exc).__name__
    summary = f"{name}: {text}" if text else name
    if len(summary) > ERROR_MAX_CHARS:
        summary = summary[: ERROR_MAX_CHARS - 1] + "…"
    return summary
