"""Reply writers for the tests: they record what they were asked, fail on cue, or take their time.

Each is a plain module-level callable, so a test names it by dotted path in
``REPLY_WRITER`` exactly as a deployment would.
"""

from __future__ import annotations

import asyncio
import threading
import time

from parley.conversations.replies import ReplyRequest, list_message_ids

# Requests the recording writers received, in call order.
received: list[ReplyRequest] = []
# Calls in flight right now, and the most seen at once.
_lock = threading.Lock()
_active = 0
most_at_once = 0


def reset() -> None:
    global _active, most_at_once
    received.clear()
    _active = most_at_once = 0


def _enter() -> None:
    global _active, most_at_once
    with _lock:
        _active += 1
        most_at_once = max(most_at_once, _active)


def _leave() -> None:
    global _active
    with _lock:
        _active -= 1


def recording(request: ReplyRequest) -> str:
    received.append(request)
    return list_message_ids(request)


def scripted(request: ReplyRequest) -> str:
    """Fails on cue, by the first message's content: "boom" always, "flaky" on the
    first two attempts, "slow" sleeps 2 s, "none" returns no text."""
    received.append(request)
    cue = request.messages[0].content if request.messages else ""
    if cue == "boom":
        raise RuntimeError(
            "backend said 500 for https://user:hunter2@llm.example/v1?key=sk-abcdefghijklmnop"
        )
    if cue == "flaky" and request.attempt <= 2:
        raise ConnectionError("connection reset by peer")
    if cue == "slow":
        time.sleep(2)
    if cue == "none":
        return "   "
    return list_message_ids(request)


def sleepy(request: ReplyRequest) -> str:
    """A plain function that takes 50 ms, counting how many calls overlap."""
    _enter()
    try:
        time.sleep(0.05)
        return list_message_ids(request)
    finally:
        _leave()


async def async_sleepy(request: ReplyRequest) -> str:
    """An async writer that awaits 200 ms ("slow": 2 s), counting how many calls overlap."""
    received.append(request)
    _enter()
    try:
        slow = request.messages and request.messages[0].content == "slow"
        await asyncio.sleep(2 if slow else 0.2)
        return list_message_ids(request)
    finally:
        _leave()


class AsyncCallable:
    """A writer object whose ``__call__`` is a coroutine function."""

    async def __call__(self, request: ReplyRequest) -> str:
        return list_message_ids(request)


async_callable = AsyncCallable()
