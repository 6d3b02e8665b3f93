"""The live process as `make run` starts it: its own port, its own URLs (SPEC L-1, L-2)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(module_stack_factory: Callable[..., Stack]) -> Stack:
    return module_stack_factory(window=1.0, tolerance=1.2, live=True)


def get(url: str) -> tuple[int, dict[str, str], Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return (
                reply.status,
                {k.lower(): v for k, v in reply.headers.items()},
                json.loads(reply.read() or b"null"),
            )
    except urllib.error.HTTPError as error:
        return (
            error.code,
            {k.lower(): v for k, v in error.headers.items()},
            json.loads(error.read() or b"null"),
        )


def test_the_live_process_answers_the_probes_on_its_own_port(stack: Stack) -> None:
    assert stack.live_port != stack.port
    status, headers, body = get(f"{stack.live_url}/healthz")
    assert (status, body) == (200, {"status": "ok"})
    assert headers["server"] == "uvicorn"
    status, _, body = get(f"{stack.live_url}/readyz")
    assert (status, body["database"], body["broker"]) == (200, "ok", "ok")


def test_the_live_process_serves_none_of_the_web_api(stack: Stack) -> None:
    for path in ("/webhook/", "/conversations/6a41b347-8d80-4ce9-84ba-7af66f369f6a/", "/admin/"):
        status, headers, body = get(f"{stack.live_url}{path}")
        assert status == 404, path
        assert headers["content-type"] == "application/problem+json"
        assert body["status"] == 404
