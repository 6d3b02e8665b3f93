"""Database work of the live process's async views, in short sync functions (SPEC L-1).

An event stream lives for minutes and waits most of that time, so it must
not hold a database connection while it waits. :func:`short` runs one sync
function on a worker thread and gives that thread's connection back (to the
live process's pool) as soon as the function returns, error or not. Nothing
else in the console touches the ORM from an async view.

:func:`background` does the same on the console's own two threads, which run
at a lower CPU priority (``nice`` + BACKGROUND_NICENESS): the streams' work
(reading the outbox, rendering pages again) gives way to the engine's
processes when the machine is busy, so that open consoles do not slow the
webhooks they watch. A page a person asks for uses :func:`short`.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import wraps
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.db import connections

P = ParamSpec("P")
R = TypeVar("R")

BACKGROUND_THREADS = 2
BACKGROUND_NICENESS = 10


def _closing(fn: Callable[P, R]) -> Callable[P, R]:
    @wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        finally:
            connections.close_all()

    return run


async def short(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run ``fn`` on a worker thread; its database connection is released when it returns.

    Not thread-sensitive: two streams' reads run side by side, each on a
    connection of its own, instead of queueing for Django's one sync thread.
    """
    return await sync_to_async(_closing(fn), thread_sensitive=False)(*args, **kwargs)


def _lower_priority() -> None:
    # Linux schedules threads one by one: this lowers this thread only.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICENESS)


_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _background_executor() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(
                max_workers=BACKGROUND_THREADS,
                thread_name_prefix="parley-console",
                initializer=_lower_priority,
            )
        return _executor


async def background(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """As :func:`short`, on the console's low-priority threads (the streams' work)."""
    run = sync_to_async(_closing(fn), thread_sensitive=False, executor=_background_executor())
    return await run(*args, **kwargs)
