"""The Pix API and reply streams on the real live process (SPEC section 8, L-1 to L-4).

Short poll times (``PIX_POLL_SECONDS=1.5``) for most tests, and one at the
real 8 s default. The suite runs these on PostgreSQL (the bell) and on the
embedded defaults (SQLite, a 0.25 s poll), as ``make run`` serves them.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from parley.streams.models import PixMessage, Stream
from tests.e2e.conftest import ROOT, Stack, free_port
from tests.payloads import new_conversation, new_message

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

POLL = 1.5
ISPB_BASE = 40_000_000


@pytest.fixture(scope="module")
def stack(module_stack_factory: Callable[..., Stack]) -> Stack:
    return module_stack_factory(
        window=1.0,
        tolerance=1.2,
        live=True,
        PIX_POLL_SECONDS=str(POLL),
        REPLY_STREAM_POLL_SECONDS=str(POLL),
    )


_counter = iter(range(1, 10**6))


def new_ispb() -> str:
    """A fresh ISPB per test: the module's tests share one stack and database."""
    return f"{ISPB_BASE + next(_counter) * 97:08d}"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any
    seconds: float


def call(base: str, method: str, path: str, accept: str | None = None) -> Answer:
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    headers = {"Accept": accept} if accept else {}
    started = time.monotonic()
    try:
        conn.request(method, path, headers=headers)
        reply = conn.getresponse()
        raw = reply.read()
        seconds = time.monotonic() - started
        return Answer(
            reply.status,
            {k.lower(): v for k, v in reply.getheaders()},
            json.loads(raw) if raw else None,
            seconds,
        )
    finally:
        conn.close()


def generate(stack: Stack, ispb: str, count: int) -> None:
    answer = call(stack.live_url, "POST", f"/api/util/msgs/{ispb}/{count}")
    assert (answer.status, answer.body) == (201, {"created": count})


def test_the_pix_api_is_served_by_the_live_process_only(stack: Stack) -> None:
    ispb = new_ispb()
    generate(stack, ispb, 1)

    on_web = call(stack.base_url, "GET", f"/api/pix/{ispb}/stream/start")
    on_live = call(stack.live_url, "GET", f"/api/pix/{ispb}/stream/start")

    assert (on_web.status, on_web.headers["content-type"]) == (404, "application/problem+json")
    assert on_live.status == 200
    assert on_live.headers["server"] == "uvicorn"
    assert on_live.body["recebedor"]["ispb"] == ispb


def test_a_get_with_nothing_answers_204_within_the_poll_time_never_later(stack: Stack) -> None:
    ispb = new_ispb()
    start = call(stack.live_url, "GET", f"/api/pix/{ispb}/stream/start")
    nxt = call(stack.live_url, "GET", start.headers["pull-next"])

    for answer in (start, nxt):
        assert answer.status == 204
        # Measured by the client: the server answers within POLL of the arrival; the
        # margin is the connection and the request's own way in and out.
        assert POLL - 0.5 <= answer.seconds <= POLL + 0.25, answer.seconds
    assert nxt.headers["pull-next"] == start.headers["pull-next"]


def test_a_message_posted_mid_wait_is_answered_within_a_second(stack: Stack) -> None:
    ispb = new_ispb()
    path = call(stack.live_url, "GET", f"/api/pix/{ispb}/stream/start").headers["pull-next"]
    results: list[Answer] = []
    waiting = threading.Thread(target=lambda: results.append(call(stack.live_url, "GET", path)))
    waiting.start()
    time.sleep(0.5)
    posted = time.monotonic()
    generate(stack, ispb, 1)
    waiting.join(10)

    [answer] = results
    assert answer.status == 200
    assert time.monotonic() - posted < 1.0


def test_a_client_that_leaves_mid_wait_leaves_nothing_claimed(stack: Stack) -> None:
    ispb = new_ispb()
    with socket.create_connection(("127.0.0.1", stack.live_port)) as sock:
        sock.sendall(
            f"GET /api/pix/{ispb}/stream/start HTTP/1.1\r\nHost: x\r\n"
            "Accept: multipart/json\r\n\r\n".encode()
        )
        time.sleep(0.5)  # the request is waiting
    generate(stack, ispb, 3)
    time.sleep(1.0)  # a request still running would have taken them by now

    assert PixMessage.objects.filter(recebedor_ispb=ispb, delivered_at__isnull=True).count() == 3
    deadline = time.monotonic() + 5
    while Stream.objects.filter(key=ispb, closed_at__isnull=True).exists():
        assert time.monotonic() < deadline, "the abandoned stream still holds its slot"
        time.sleep(0.1)
    assert Stream.objects.get(key=ispb).close_reason == "abandoned"
    answer = call(stack.live_url, "GET", f"/api/pix/{ispb}/stream/start", "multipart/json")
    assert len(answer.body) == 3


def test_six_collectors_over_hundreds_of_messages_get_each_exactly_once(stack: Stack) -> None:
    ispb = new_ispb()
    for _ in range(3):
        generate(stack, ispb, 100)

    def collect() -> list[str]:
        got: list[str] = []
        answer = call(stack.live_url, "GET", f"/api/pix/{ispb}/stream/start", "multipart/json")
        while answer.status == 200:
            got += [m["endToEndId"] for m in answer.body]
            answer = call(stack.live_url, "GET", answer.headers["pull-next"], "multipart/json")
        assert answer.status == 204
        assert call(stack.live_url, "DELETE", answer.headers["pull-next"]).status == 200
        return got

    collected: list[list[str]] = [[] for _ in range(6)]
    threads = [
        threading.Thread(target=lambda i=i: collected[i].extend(collect())) for i in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    everything = [e for batch in collected for e in batch]
    assert len(everything) == len(set(everything)) == 300
    stored = set(
        PixMessage.objects.filter(recebedor_ispb=ispb).values_list("end_to_end_id", flat=True)
    )
    assert set(everything) == stored
    streams = Stream.objects.filter(key=ispb)
    assert [s.close_reason for s in streams] == ["deleted"] * 6
    assert sum(s.delivered_count for s in streams) == sum(s.acknowledged_count for s in streams)


def test_a_restart_of_the_live_process_between_two_gets_changes_nothing(stack: Stack) -> None:
    """X-11: the state lives in the database, not in the process."""
    ispb = new_ispb()
    generate(stack, ispb, 2)
    first = call(stack.live_url, "GET", f"/api/pix/{ispb}/stream/start")
    assert first.status == 200

    stack.kill("live", signal.SIGTERM)
    stack.start_live()

    second = call(stack.live_url, "GET", first.headers["pull-next"])
    older = call(stack.live_url, "GET", first.headers["pull-next"])
    assert second.status == 200
    assert second.body["endToEndId"] != first.body["endToEndId"]
    assert older.status == 204  # an older id still names the live stream
    assert older.headers["pull-next"] == second.headers["pull-next"]
    assert Stream.objects.get(key=ispb).acknowledged_count == 1


def test_a_reply_stream_gets_a_reply_once_it_is_written(stack: Stack) -> None:
    tenant = uuid.uuid4()
    path = call(stack.live_url, "GET", f"/api/replies/stream/start?tenant={tenant}").headers[
        "pull-next"
    ]
    conversation_id, message_id = uuid.uuid4(), uuid.uuid4()
    assert stack.post(new_conversation(conversation_id)).status == 201
    # A conversation of the default tenant: not for this tenant's stream.
    assert stack.post(new_message(message_id, conversation_id, "hello")).status == 202

    other = call(stack.live_url, "GET", path)
    every = call(stack.live_url, "GET", "/api/replies/stream/start")
    while every.status == 200 and every.body["conversation_id"] != str(conversation_id):
        every = call(stack.live_url, "GET", every.headers["pull-next"])

    assert other.status == 204
    assert every.status == 200
    assert every.body["in_reply_to"] == [str(message_id)]
    assert every.body["content"] == f"Received messages:\n{message_id}"


@pytest.fixture
def live_at_defaults(stack: Stack) -> Iterator[str]:
    """A second live process on the same database, with the code's own poll time (8 s)."""
    port = free_port()
    env = {
        key: value
        for key, value in stack.env.items()
        if not key.startswith(("PIX_", "REPLY_STREAM_"))
    }
    env["LIVE_PORT"] = str(port)
    log = (stack.workdir / "live-defaults.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "config.live"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                assert time.monotonic() < deadline, "the live process did not start"
                time.sleep(0.1)
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(15)
        log.close()


@pytest.mark.slow
def test_at_the_real_default_a_get_answers_204_after_at_most_8_seconds(
    live_at_defaults: str,
) -> None:
    answer = call(live_at_defaults, "GET", f"/api/pix/{new_ispb()}/stream/start")

    assert answer.status == 204
    assert 7.5 <= answer.seconds <= 8.25, answer.seconds
