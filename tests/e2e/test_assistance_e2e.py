"""Assistance requests end to end: real gunicorn, Celery worker and beat, a real HTTP receiver.

A request goes from the POST to SENT at the receiver; a retry is made by the
sweep; a lost task (a flushed Redis) only delays it; and a worker SIGKILLed
while a send is held open leaves the request due again after its lease: it
ends SENT, at most one duplicate reaches the receiver, and every attempt
carries the same key (A-6).
"""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from parley.assistance.models import Delivery
from parley.assistance.services import catalog
from tests.e2e.conftest import Stack, _flush_redis
from tests.receiver import Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    fake = Receiver().start()
    yield fake
    fake.stop()


def route(slug: str, url: str) -> None:
    channel = catalog.channel_save(
        name=f"{slug}-slack", kind="slack", config={"url": url}, rate_per_second=0
    )
    catalog.topic_save(slug=slug, name=slug, channel=channel)


def post(stack: Stack, topic: str, description: str = "Customer wants 40 seats") -> str:
    request = urllib.request.Request(
        f"{stack.base_url}/assistance-requests/",
        data=json.dumps({"topic": topic, "description": description}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202
        return str(json.loads(response.read())["id"])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def status(request_id: str) -> str:
    return str(Delivery.objects.get(pk=request_id).status)


def test_requests_are_sent_retried_and_survive_a_lost_task(
    stack_factory: Any, receiver: Receiver
) -> None:
    calls = {"n": 0}

    def flaky(received: Any) -> tuple[int, bytes]:
        if received.path != "/flaky":
            return 200, b"ok"
        calls["n"] += 1
        return (500, b"rollup_error") if calls["n"] == 1 else (200, b"ok")

    receiver.answer = flaky
    route("e2e-flaky", receiver.url("/flaky"))
    route("e2e-sales", receiver.url("/sales"))
    stack = stack_factory(
        window=None,
        tolerance=None,
        ASSISTANCE_RETRY_SCHEDULE="0,1,1",
        ASSISTANCE_PENDING_GRACE_SECONDS="1",
    )

    # Sent at once, through the task published after commit.
    first = post(stack, "e2e-sales")
    wait_for(lambda: status(first) == "SENT", 15, "the first request's SENT")
    assert receiver.keys() == [first]

    # A 500, then the sweep's retry a second later.
    flaky_id = post(stack, "e2e-flaky")
    wait_for(lambda: status(flaky_id) == "SENT", 15, "the retried request's SENT")
    assert receiver.keys().count(flaky_id) == 2
    assert Delivery.objects.get(pk=flaky_id).attempts == 2

    # A lost task: the worker is down and the broker flushed before it runs.
    stack.kill("worker", signal.SIGKILL)
    lost = post(stack, "e2e-sales")
    if stack.env["CELERY_BROKER_URL"].startswith("redis"):
        _flush_redis(stack.env["CELERY_BROKER_URL"])
    assert status(lost) == "PENDING"
    stack.start_worker()
    wait_for(lambda: status(lost) == "SENT", 20, "the lost task's request SENT by the sweep")
    assert receiver.keys().count(lost) == 1


def test_a_worker_killed_mid_send_leaves_the_request_due_after_its_lease(
    stack_factory: Any, receiver: Receiver
) -> None:
    route("e2e-sales", receiver.url("/sales"))
    # Timeout 1 s: the delivery task's hard limit is 13 s, so the lease must be longer.
    stack = stack_factory(
        window=None, tolerance=None, ASSISTANCE_TIMEOUT_SECONDS="1", ASSISTANCE_LEASE_SECONDS="15"
    )
    receiver.hold_next(1)
    request_id = post(stack, "e2e-sales")
    assert receiver.held.wait(15), "the send never reached the receiver"
    stack.kill("worker", signal.SIGKILL)  # while the send is held open
    killed_at = time.monotonic()
    receiver.release()
    assert status(request_id) == "QUEUED"  # claimed, never recorded
    stack.start_worker()
    wait_for(lambda: status(request_id) == "SENT", 40, "SENT after the lease")
    assert time.monotonic() - killed_at >= 14  # not before the lease ended
    keys = receiver.keys()
    assert keys == [request_id, request_id]  # the held send, and one more: at most one duplicate
    delivery = Delivery.objects.get(pk=request_id)
    assert (delivery.attempts, delivery.last_error) == (1, None)


def test_a_pricing_request_writes_its_email_under_var_on_the_defaults(stack_factory: Any) -> None:
    """``make run`` with nothing configured: the seeded route, Django's file backend."""
    from importlib import import_module

    from django.apps import apps

    import_module("parley.assistance.migrations.0002_default_topics").create(apps, None)
    stack = stack_factory(window=None, tolerance=None)
    request_id = post(stack, "Pricing", "A quote for 40 seats, please")
    wait_for(lambda: status(request_id) == "SENT", 20, "the pricing request's SENT")
    mail = list((stack.workdir / "var" / "mail").iterdir())
    assert len(mail) == 1
    text = mail[0].read_text()
    assert "A quote for 40 seats, please" in text
    assert request_id in text
    assert "To: assistance@localhost" in text
    # And Slack, with no URL configured, fails at once and clearly: never stuck.
    sales_id = post(stack, "sales")
    wait_for(lambda: status(sales_id) == "FAILED", 20, "the unconfigured Slack request's FAILED")
    assert Delivery.objects.get(pk=sales_id).last_error == "channel not configured"
