"""Test helpers: an in-process ASGI client for the stream, and an SSE parser by the spec."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from django.core.handlers.asgi import ASGIHandler


@dataclass
class Event:
    event: str = "message"
    data: str = ""
    id: str | None = None


def parse(text: str) -> list[Event]:
    """Events in an event stream, by the WHATWG parsing rules (lines end at CRLF, CR or LF)."""
    events: list[Event] = []
    data: list[str] = []
    kind, last_id = "", None
    for line in re.split(r"\r\n|\r|\n", text):
        if line == "":
            if data:
                events.append(Event(kind or "message", "\n".join(data), last_id))
            data, kind = [], ""
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            kind = value
        elif name == "id":
            last_id = value
    return events


@dataclass
class Stream:
    """One request to the ASGI application, kept open; the client leaves on exit."""

    path: str
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 0
    response_headers: dict[str, str] = field(default_factory=dict)
    ended: bool = False
    _buffer: str = ""
    _body: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    _leave: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Stream:
        path, _, query = self.path.partition("?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(k.lower().encode(), v.encode()) for k, v in self.headers.items()],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        started = asyncio.Event()
        sent_request = False

        async def receive() -> dict[str, Any]:
            nonlocal sent_request
            if not sent_request:
                sent_request = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await self._leave.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.status = message["status"]
                self.response_headers = {
                    k.decode().lower(): v.decode() for k, v in message["headers"]
                }
                started.set()
            elif message["type"] == "http.response.body":
                if message.get("body"):
                    await self._body.put(message["body"])
                if not message.get("more_body"):
                    await self._body.put(None)

        self._task = asyncio.create_task(ASGIHandler()(scope, receive, send))  # type: ignore[arg-type]
        await asyncio.wait_for(started.wait(), 10)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._leave.set()
        assert self._task is not None
        await asyncio.wait_for(self._task, 10)

    async def text(self, timeout: float = 5.0) -> str:
        """The body received so far and until it ends or ``timeout`` passes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.ended and (left := deadline - loop.time()) > 0:
            try:
                chunk = await asyncio.wait_for(self._body.get(), left)
            except TimeoutError:
                break
            if chunk is None:
                self.ended = True
            else:
                self._buffer += chunk.decode()
        return self._buffer

    async def next_event(self, timeout: float = 5.0) -> Event:
        """The next complete event (not a comment, not a bare ``retry``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            events = (
                parse(self._buffer.split("\n\n", 1)[0] + "\n\n") if "\n\n" in self._buffer else []
            )
            if "\n\n" in self._buffer:
                self._buffer = self._buffer.split("\n\n", 1)[1]
                if events:
                    return events[0]
                continue
            left = deadline - loop.time()
            if self.ended or left <= 0:
                raise TimeoutError("no event")
            try:
                chunk = await asyncio.wait_for(self._body.get(), left)
            except TimeoutError as exc:
                raise TimeoutError("no event") from exc
            if chunk is None:
                self.ended = True
            else:
                self._buffer += chunk.decode()

    async def events_for(self, seconds: float) -> list[Event]:
        """Every event that arrives within ``seconds``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        found = []
        while (left := deadline - loop.time()) > 0:
            try:
                found.append(await self.next_event(left))
            except TimeoutError:
                break
        return found
