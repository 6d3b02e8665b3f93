"""Database work of the live process's async views, in short sync functions (SPEC L-1).

An event stream lives for minutes and waits most of that time, so it must
not hold a database connection while it waits. :func:`short` runs one sync
function on a worker thread and gives that thread's connection back (to the
live process's pool) as soon as the function returns, error or not. Nothing
else in the console touches the ORM from an async view.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.db import connections

P = ParamSpec("P")
R = TypeVar("R")


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
