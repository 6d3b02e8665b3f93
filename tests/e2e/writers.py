"""Reply writers for the end-to-end tests: a bot that takes a second, sync or async.

The first message's content is a cue: "always-fails" raises every time,
"fails-twice" raises on the first two attempts, "slow" takes 2.5 s. Calls
are logged as the bench's writers log theirs (``BENCH_WRITER_LOG``), so a
test can see how many overlapped, and in how many processes.
"""

from __future__ import annotations

import asyncio
import time

from bench.writers import log_call
from parley.conversations.replies import ReplyRequest, list_message_ids


def _seconds(request: ReplyRequest) -> float:
    cue = request.messages[0].content if request.messages else ""
    if cue == "always-fails":
        raise RuntimeError("the bot backend is down")
    if cue == "fails-twice" and request.attempt <= 2:
        raise ConnectionError("connection reset by peer")
    return 2.5 if cue == "slow" else 1.0


def sleep_1s(request: ReplyRequest) -> str:
    seconds = _seconds(request)
    start = time.time()
    time.sleep(seconds)
    log_call(start, time.time())
    return list_message_ids(request)


async def await_1s(request: ReplyRequest) -> str:
    seconds = _seconds(request)
    start = time.time()
    await asyncio.sleep(seconds)
    log_call(start, time.time())
    return list_message_ids(request)
