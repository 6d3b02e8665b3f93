"""Reply writers for the end-to-end tests: a bot that takes a second, sync or async.

The first message's content is a cue: "always-fails" raises every time,
"fails-twice" raises on the first two attempts, "slow" takes 2.5 s. Each
call appends ``pid start end`` to a file of its process under
``E2E_WRITER_LOG`` (when set), so a test can see how many calls overlapped,
and in how many processes.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from parley.conversations.replies import ReplyRequest, list_message_ids


def _seconds(request: ReplyRequest) -> float:
    cue = request.messages[0].content if request.messages else ""
    if cue == "always-fails":
        raise RuntimeError("the bot backend is down")
    if cue == "fails-twice" and request.attempt <= 2:
        raise ConnectionError("connection reset by peer")
    return 2.5 if cue == "slow" else 1.0


def _log(start: float, end: float) -> None:
    folder = os.environ.get("E2E_WRITER_LOG")
    if folder:
        with (Path(folder) / f"{os.getpid()}.log").open("a") as log:
            log.write(f"{os.getpid()} {start:.6f} {end:.6f}\n")


def sleep_1s(request: ReplyRequest) -> str:
    seconds = _seconds(request)
    start = time.time()
    time.sleep(seconds)
    _log(start, time.time())
    return list_message_ids(request)


async def await_1s(request: ReplyRequest) -> str:
    seconds = _seconds(request)
    start = time.time()
    await asyncio.sleep(seconds)
    _log(start, time.time())
    return list_message_ids(request)


def overlap(folder: Path) -> tuple[int, int, int]:
    """(calls, most calls at once, processes that made calls) from the logs."""
    edges: list[tuple[float, int]] = []
    pids = set()
    for path in folder.glob("*.log"):
        for line in path.read_text().splitlines():
            pid, start, end = line.split()
            pids.add(pid)
            edges += [(float(start), 1), (float(end), -1)]
    most = active = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):
        active += step
        most = max(most, active)
    return len(edges) // 2, most, len(pids)
