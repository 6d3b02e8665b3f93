"""Slow reply writers for ``make bench`` (the writers part) and the end-to-end tests.

``sleep_1s`` is a plain function that blocks for a second, like a bot called
over a synchronous HTTP client; ``async_sleep_1s`` awaits a second, like an
LLM called with an async client. Both answer with the default text (G-2), so
the bench's audit can check every reply's ids. ``BENCH_WRITER_SECONDS``
changes the second.

When ``BENCH_WRITER_LOG`` names a folder, every call appends
``pid start end`` to a file of its process there; :func:`overlap` reads them
back: how many calls ran at once, in how many processes. Only the standard
library and Parley are imported here.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from parley.conversations.replies import ReplyRequest, list_message_ids


def seconds() -> float:
    return float(os.environ.get("BENCH_WRITER_SECONDS") or 1.0)


def log_call(start: float, end: float) -> None:
    folder = os.environ.get("BENCH_WRITER_LOG")
    if folder:
        with (Path(folder) / f"{os.getpid()}.log").open("a") as log:
            log.write(f"{os.getpid()} {start:.6f} {end:.6f}\n")


def sleep_1s(request: ReplyRequest) -> str:
    start = time.time()
    time.sleep(seconds())
    log_call(start, time.time())
    return list_message_ids(request)


async def async_sleep_1s(request: ReplyRequest) -> str:
    start = time.time()
    await asyncio.sleep(seconds())
    log_call(start, time.time())
    return list_message_ids(request)


def overlap(folder: Path) -> tuple[int, int, int]:
    """(calls, most calls at once, processes that made calls), from the call logs."""
    edges: list[tuple[float, int]] = []
    pids = set()
    for path in folder.glob("*.log"):
        for line in path.read_text().splitlines():
            pid, start, end = line.split()
            pids.add(pid)
            edges += [(float(start), 1), (float(end), -1)]
    most = active = 0
    for _, step in sorted(edges):  # at equal times an end (-1) sorts before a start
        active += step
        most = max(most, active)
    return len(edges) // 2, most, len(pids)
