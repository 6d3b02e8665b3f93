"""A small HTTP/1.1 load generator: one process, one ``selectors`` loop, two modes.

It exists because the load generator shares the machine's cores with the
server under test. Every microsecond of client CPU is taken from gunicorn, so
the client must cost as little per request as possible. This one sends
pre-built request bytes over raw non-blocking sockets and parses only the
status line and ``Content-Length``; it costs a few tens of microseconds per
request, in the range of ``wrk`` and several times less than a
general-purpose client (locust's FastHttpUser, aiohttp, requests).

* :func:`run_closed_loop`: ``connections`` requests always in flight, like
  ``wrk -c``: the saturation throughput.
* :func:`run_open_loop`: one request every ``1 / rate`` seconds, whatever the
  server does, like ``wrk2 -R``: the latency at a given load.

A connection is reused when the server allows keep-alive and reopened when it
answers ``Connection: close``, as gunicorn's sync workers always do.
"""

from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# A request factory returns the raw request bytes and a tag kept with the result
# (for NEW_MESSAGE: the message id, so that accepted ids can be audited).
RequestFactory = Callable[[], tuple[bytes, str]]

_HEADER_END = b"\r\n\r\n"


@dataclass
class LoadResult:
    """Per-request outcomes, in completion order. Times are ``time.time()`` seconds."""

    started_at: float
    ended_at: float
    done_at: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    status: list[int] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    errors: int = 0
    cpu_seconds: float = 0.0

    @property
    def seconds(self) -> float:
        return max(self.ended_at - self.started_at, 1e-9)

    def count(self, status: int | None = None) -> int:
        if status is None:
            return len(self.status)
        return sum(1 for s in self.status if s == status)

    def rps(self, status: int | None = None) -> float:
        return self.count(status) / self.seconds

    def latencies(self, status: int | None = None) -> list[float]:
        if status is None:
            return list(self.latency_ms)
        return [lat for lat, s in zip(self.latency_ms, self.status, strict=True) if s == status]

    def accepted_tags(self, status: int) -> list[str]:
        return [t for t, s in zip(self.tags, self.status, strict=True) if s == status and t]


def request_bytes(
    method: str, path: str, host: str, body: bytes = b"", content_type: str = ""
) -> bytes:
    """An HTTP/1.1 request, ready to send."""
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: parley-bench\r\n"
    if content_type:
        head += f"Content-Type: {content_type}\r\n"
    if body or method in {"POST", "PUT", "PATCH"}:
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode("ascii") + b"\r\n" + body


class _Slot:
    """One in-flight request and the socket that carries it."""

    __slots__ = ("buf", "expect", "keep", "out", "sock", "t0", "tag")

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.out = b""
        self.buf = bytearray()
        self.expect = -1  # total bytes of the response once its headers are read
        self.keep = False
        self.t0 = 0.0
        self.tag = ""


def _content_length(head: bytes) -> int:
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at < 0:
        return 0
    end = lower.find(b"\r\n", at + 2)
    if end < 0:  # the last header line
        end = len(lower)
    return int(lower[at + 17 : end].strip())


class _Driver:
    """The selectors loop both generators share: it sends a slot's request and reads its response.

    A slot whose request is done (answered or failed) goes to ``finished``; the
    caller decides whether it carries another request.
    """

    def __init__(self, host: str, port: int, factory: RequestFactory, result: LoadResult) -> None:
        self.sel = selectors.DefaultSelector()
        self.addr = (host, port)
        self.factory = factory
        self.result = result
        self.in_flight = 0
        self.finished: list[_Slot] = []

    def start(self, slot: _Slot, t0: float) -> None:
        """Send the factory's next request on ``slot``; its latency counts from ``t0``."""
        slot.out, slot.tag = self.factory()
        slot.buf.clear()
        slot.expect = -1
        slot.t0 = t0
        self.in_flight += 1
        if slot.sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            code = sock.connect_ex(self.addr)
            slot.sock = sock
            if code not in (0, errno.EINPROGRESS):
                self._done(slot, 0)
                return
            self.sel.register(sock, selectors.EVENT_WRITE, slot)
        else:
            self._send(slot)

    def poll(self, timeout: float) -> bool:
        """Handle the sockets that are ready; False if none was within ``timeout``."""
        events = self.sel.select(timeout=timeout)
        for key, mask in events:
            slot = key.data
            if mask & selectors.EVENT_WRITE:
                sock = slot.sock
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    self._done(slot, 0)
                    continue
                self._send(slot)
            else:
                self._receive(slot)
        return bool(events)

    def drop(self, slot: _Slot) -> None:
        if slot.sock is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(slot.sock)
            slot.sock.close()
            slot.sock = None

    def close(self) -> None:
        self.sel.close()

    def _done(self, slot: _Slot, status: int) -> None:
        result = self.result
        result.done_at.append(time.time())
        result.latency_ms.append((time.perf_counter() - slot.t0) * 1000.0)
        result.status.append(status)
        result.tags.append(slot.tag)
        if status == 0:
            result.errors += 1
        if status == 0 or not slot.keep:
            self.drop(slot)
        elif slot.sock is not None:
            # Kept for the slot's next request; not watched while it carries none.
            self.sel.unregister(slot.sock)
        self.in_flight -= 1
        self.finished.append(slot)

    def _send(self, slot: _Slot) -> None:
        sock = slot.sock
        assert sock is not None
        try:
            sent = sock.send(slot.out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._done(slot, 0)
            return
        slot.out = slot.out[sent:]
        events = selectors.EVENT_WRITE if slot.out else selectors.EVENT_READ
        try:
            self.sel.modify(sock, events, slot)
        except KeyError:  # a kept socket, starting its next request
            self.sel.register(sock, events, slot)

    def _receive(self, slot: _Slot) -> None:
        sock = slot.sock
        assert sock is not None
        try:
            chunk = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._done(slot, 0)
            return
        if not chunk:
            self._done(slot, 0)  # closed before a whole response arrived
            return
        buf = slot.buf
        buf += chunk
        if slot.expect < 0:
            end = buf.find(_HEADER_END)
            if end < 0:
                return
            head = bytes(buf[:end])
            slot.expect = end + 4 + _content_length(head)
            slot.keep = b"connection: close" not in head.lower()
        if len(buf) < slot.expect:
            return
        self._done(slot, int(buf[9:12]))


def run_closed_loop(
    host: str,
    port: int,
    factory: RequestFactory,
    *,
    connections: int,
    seconds: float | None = None,
    total: int | None = None,
    timeout: float = 30.0,
) -> LoadResult:
    """Keep ``connections`` requests in flight for ``seconds``, or until ``total`` are done."""
    if seconds is None and total is None:
        raise ValueError("give seconds or total")
    cpu0 = time.process_time()
    started = time.time()
    deadline = started + seconds if seconds is not None else float("inf")
    result = LoadResult(started_at=started, ended_at=started)
    driver = _Driver(host, port, factory, result)
    issued = 0

    def more() -> bool:
        return (total is None or issued < total) and time.time() < deadline

    for slot in [_Slot() for _ in range(connections)]:
        if more():
            issued += 1
            driver.start(slot, time.perf_counter())
    last_progress = time.time()
    while driver.in_flight or driver.finished:
        if driver.poll(1.0 if not driver.finished else 0.0):
            last_progress = time.time()
        elif driver.in_flight and time.time() - last_progress > timeout:
            result.errors += driver.in_flight  # stuck in flight
            break
        finished, driver.finished = driver.finished, []
        for slot in finished:
            if more():
                issued += 1
                driver.start(slot, time.perf_counter())
            else:
                driver.drop(slot)
    driver.close()
    result.ended_at = min(time.time(), deadline) if seconds is not None else time.time()
    if seconds is not None and result.done_at:
        # Requests still in flight at the deadline complete after it; count
        # throughput over the span the completions actually cover.
        result.ended_at = max(result.ended_at, result.done_at[-1])
    result.cpu_seconds = time.process_time() - cpu0
    return result


def run_open_loop(
    host: str,
    port: int,
    factory: RequestFactory,
    *,
    rate: float,
    seconds: float,
    max_in_flight: int = 1024,
    timeout: float = 30.0,
) -> LoadResult:
    """Send a request every ``1 / rate`` seconds for ``seconds``, whatever the server does.

    An open loop, like ``wrk2 -R``: the arrivals do not wait for answers. Each
    latency counts from the request's scheduled time, so a server that falls
    behind is charged for the queue it makes (no coordinated omission), even
    when ``max_in_flight`` holds requests back. ``ended_at`` is the end of the
    schedule, so ``rps()`` is the completions per second of schedule.
    """
    cpu0 = time.process_time()
    started = time.time()
    result = LoadResult(started_at=started, ended_at=started + seconds)
    driver = _Driver(host, port, factory, result)
    interval = 1.0 / rate
    total = max(1, round(rate * seconds))
    origin = time.perf_counter()
    issued = 0
    spare: list[_Slot] = []
    last_progress = time.time()
    while issued < total or driver.in_flight:
        now = time.perf_counter()
        while issued < total and driver.in_flight < max_in_flight:
            at = origin + issued * interval
            if at > now:
                break
            driver.start(spare.pop() if spare else _Slot(), at)
            issued += 1
        wait = 1.0
        if issued < total and driver.in_flight < max_in_flight:
            wait = max(0.0, origin + issued * interval - time.perf_counter())
        if driver.poll(wait):
            last_progress = time.time()
        elif driver.in_flight and time.time() - last_progress > timeout:
            result.errors += driver.in_flight  # stuck in flight
            break
        spare.extend(driver.finished)
        driver.finished.clear()
    for slot in spare:
        driver.drop(slot)
    driver.close()
    result.cpu_seconds = time.process_time() - cpu0
    return result
