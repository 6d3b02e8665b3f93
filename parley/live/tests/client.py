"""Drive the live process's ASGI application in-process, as uvicorn does (tests only).

Requests go through Django's real ASGI handler (middleware, disconnect
handling, the streaming of the body) with the live process's URLs and
middleware. A request may be told to disconnect at a chosen moment: the
handler then sees ``http.disconnect`` and cancels the view, exactly as
under uvicorn when a client goes away (SPEC L-4).

The views run their database steps in worker threads, with connections of
their own: tests that use this client commit their data
(``django_db(transaction=True)``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from django.conf import settings as django_settings
from django.core.handlers.asgi import ASGIHandler
from django.db import DEFAULT_DB_ALIAS, connections

from parley.live.bell import bell

T = TypeVar("T")


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float
    messages: list[dict[str, Any]] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def pull_next(self) -> str | None:
        return self.headers.get("pull-next")


class LiveClient:
    def __init__(self, app: ASGIHandler) -> None:
        self.app = app

    async def call(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        disconnect: asyncio.Event | None = None,
        on_send: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
    ) -> Reply:
        """One request; it disconnects when ``disconnect`` is set (never, without one)."""
        parts = urlsplit(path)
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": parts.path,
            "raw_path": parts.path.encode(),
            "query_string": parts.query.encode(),
            "root_path": "",
            "headers": [
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in {
                    "host": "testserver",
                    **({"content-length": str(len(body))} if body else {}),
                    **(headers or {}),
                }.items()
            ],
            "client": ("127.0.0.1", 40000),
            "server": ("testserver", 80),
        }
        delivered = False
        gone = disconnect or asyncio.Event()

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        sent: list[dict[str, Any]] = []

        async def send(message: Mapping[str, Any]) -> None:
            message = dict(message)
            sent.append(message)
            if on_send is not None:
                await on_send(message)

        started = time.monotonic()
        await self.app(scope, receive, send)
        elapsed = time.monotonic() - started
        start = next((m for m in sent if m["type"] == "http.response.start"), None)
        if start is None:
            return Reply(0, {}, b"", elapsed, sent)
        return Reply(
            start["status"],
            {k.decode().lower(): v.decode("latin-1") for k, v in start["headers"]},
            b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"),
            elapsed,
            sent,
        )

    def run(self, scenario: Coroutine[Any, Any, T]) -> T:
        """Run a scenario in a fresh event loop, and stop the bell it started."""

        async def main() -> T:
            try:
                return await scenario
            finally:
                # Let the tasks the requests left behind end (the follow-ups that
                # undo an abandoned answer), but not the process's own: the bell's,
                # the re-checks' ("parley-..."), which stop with the loop.
                await asyncio.sleep(0)
                for _ in range(200):
                    if not [
                        task
                        for task in asyncio.all_tasks()
                        if task is not asyncio.current_task()
                        and not task.get_name().startswith("parley-")
                    ]:
                        break
                    await asyncio.sleep(0.02)
                await bell.stop()

        return asyncio.run(main())

    def request(self, method: str, path: str, **kwargs: Any) -> Reply:
        return self.run(self.call(method, path, **kwargs))

    def get(self, path: str, accept: str | None = None, **kwargs: Any) -> Reply:
        headers = kwargs.pop("headers", {})
        if accept is not None:
            headers["Accept"] = accept
        return self.request("GET", path, headers=headers, **kwargs)

    def post(self, path: str, payload: Any = None, **kwargs: Any) -> Reply:
        body = b"" if payload is None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
        return self.request("POST", path, body=body, headers=headers, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Reply:
        return self.request("DELETE", path, **kwargs)


@contextlib.contextmanager
def live_application(settings: Any, *, urlconf: str = "config.urls_live") -> Iterator[LiveClient]:
    """The live process's application: its URLs and its middleware.

    As in the live process, a request's connections close when it ends
    (there they go back to the pool): each request runs its sync code on a
    thread of its own, and a persistent connection would outlive it.
    """
    settings.ROOT_URLCONF = urlconf
    settings.MIDDLEWARE = django_settings.LIVE_MIDDLEWARE
    database = connections.settings[DEFAULT_DB_ALIAS]
    max_age = database["CONN_MAX_AGE"]
    database["CONN_MAX_AGE"] = 0
    try:
        yield LiveClient(ASGIHandler())
    finally:
        database["CONN_MAX_AGE"] = max_age
