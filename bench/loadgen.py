"""A small closed-loop HTTP/1.1 load generator: one process, one ``selectors`` loop.

It exists because the load generator shares the machine's cores with the
server under test. Every microsecond of client CPU is taken from gunicorn, so
the client must cost as little per request as possible. This one sends
pre-built request bytes over raw non-blocking sockets and parses only the
status line and ``Content-Length``; it costs a few tens of microseconds per
request, in the range of ``wrk`` and several times less than a
general-purpose client (locust's FastHttpUser, aiohttp, requests).

``connections`` requests are always in flight (a closed loop, like
``wrk -c``). A connection is reused when the server allows keep-alive and
reopened when it answers ``Connection: close``, as gunicorn's sync workers
always do.
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
    return int(lower[at + 17 : end].strip())


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
    sel = selectors.DefaultSelector()
    addr = (host, port)
    cpu0 = time.process_time()
    started = time.time()
    deadline = started + seconds if seconds is not None else float("inf")
    result = LoadResult(started_at=started, ended_at=started)
    done_at, latency_ms, status, tags = (
        result.done_at,
        result.latency_ms,
        result.status,
        result.tags,
    )
    issued = 0
    perf = time.perf_counter
    now = time.time

    def issue(slot: _Slot) -> bool:
        nonlocal issued
        if total is not None and issued >= total:
            return False
        if now() >= deadline:
            return False
        issued += 1
        slot.out, slot.tag = factory()
        slot.buf.clear()
        slot.expect = -1
        slot.t0 = perf()
        if slot.sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            code = sock.connect_ex(addr)
            slot.sock = sock
            if code not in (0, errno.EINPROGRESS):
                fail(slot)
                return True
            sel.register(sock, selectors.EVENT_WRITE, slot)
        else:
            send(slot, registered=True)
        return True

    def send(slot: _Slot, *, registered: bool) -> None:
        sock = slot.sock
        assert sock is not None
        try:
            sent = sock.send(slot.out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            fail(slot)
            return
        slot.out = slot.out[sent:]
        events = selectors.EVENT_WRITE if slot.out else selectors.EVENT_READ
        if registered:
            sel.modify(sock, events, slot)
        else:
            sel.register(sock, events, slot)

    def drop(slot: _Slot) -> None:
        if slot.sock is not None:
            with contextlib.suppress(KeyError, ValueError):
                sel.unregister(slot.sock)
            slot.sock.close()
            slot.sock = None

    def fail(slot: _Slot) -> None:
        result.errors += 1
        done_at.append(now())
        latency_ms.append((perf() - slot.t0) * 1000.0)
        status.append(0)
        tags.append(slot.tag)
        drop(slot)
        if not issue(slot):
            idle.append(slot)

    def receive(slot: _Slot) -> None:
        sock = slot.sock
        assert sock is not None
        try:
            chunk = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            fail(slot)
            return
        if not chunk:
            fail(slot)  # closed before a whole response arrived
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
        done_at.append(now())
        latency_ms.append((perf() - slot.t0) * 1000.0)
        status.append(int(buf[9:12]))
        tags.append(slot.tag)
        if not slot.keep:
            drop(slot)
        if not issue(slot):
            idle.append(slot)
            drop(slot)

    idle: list[_Slot] = []
    slots = [_Slot() for _ in range(connections)]
    for slot in slots:
        if not issue(slot):
            idle.append(slot)
    last_progress = now()
    while len(idle) < connections:
        events = sel.select(timeout=1.0)
        if not events:
            if now() - last_progress > timeout:
                result.errors += connections - len(idle)  # stuck in flight
                break
            continue
        last_progress = now()
        for key, mask in events:
            slot = key.data
            if mask & selectors.EVENT_WRITE:
                sock = slot.sock
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    fail(slot)
                    continue
                send(slot, registered=True)
            else:
                receive(slot)
    for slot in slots:
        drop(slot)
    sel.close()
    result.ended_at = min(now(), deadline) if seconds is not None else now()
    if seconds is not None and done_at:
        # Requests still in flight at the deadline complete after it; count
        # throughput over the span the completions actually cover.
        result.ended_at = max(result.ended_at, done_at[-1])
    result.cpu_seconds = time.process_time() - cpu0
    return result
