"""The optional per-source rate limit on POST /webhook/ (parley.core.throttling)."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings
from prometheus_client import REGISTRY
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from parley.conversations.models import Conversation
from parley.core.throttling import Rate, WebhookRateThrottle, parse_rate
from tests.payloads import new_conversation

PROBLEM = "application/problem+json"
# 1_800_000_000 is a multiple of 60: a minute window starts there.
WINDOW_START = 1_800_000_000


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


def post(
    client: Client,
    *,
    address: str = "10.0.0.1",
    conversation_id: uuid.UUID | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    payload = new_conversation(conversation_id or uuid.uuid4())
    return client.post(
        "/webhook/",
        data=json.dumps(payload),
        content_type="application/json",
        headers=headers or {},
        REMOTE_ADDR=address,
    )


def rate_limited_count() -> float:
    value = REGISTRY.get_sample_value(
        "parley_webhook_events_total", {"type": "unknown", "result": "rate_limited"}
    )
    return value or 0.0


@pytest.mark.parametrize(
    ("rate", "expected"),
    [
        ("100/s", Rate(100, 1)),
        ("6000/min", Rate(6000, 60)),
        ("5/m", Rate(5, 60)),
        ("50000/hour", Rate(50000, 3600)),
        ("1/day", Rate(1, 86400)),
    ],
)
def test_rates_use_drf_syntax(rate: str, expected: Rate) -> None:
    assert parse_rate(rate) == expected


@pytest.mark.parametrize("rate", ["", "100", "0/s", "-1/s", "ten/s", "100/week", "100/"])
def test_a_bad_rate_is_a_configuration_error(rate: str) -> None:
    with pytest.raises(ImproperlyConfigured):
        parse_rate(rate)


@pytest.mark.django_db
@override_settings(WEBHOOK_RATE_LIMIT="3/min")
def test_the_fourth_request_in_a_minute_from_one_source_gets_429(client: Client) -> None:
    before = rate_limited_count()
    with time_machine.travel(WINDOW_START + 15, tick=False):
        for _ in range(3):
            assert post(client).status_code == 201
        refused_id = uuid.uuid4()
        response = post(client, conversation_id=refused_id)

    assert response.status_code == 429, response.content
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["status"] == 429
    assert body["code"] == "rate_limited"
    assert body["type"] == "urn:parley:problem:rate_limited"
    # The window ends at WINDOW_START + 60, 45 s later.
    assert response["Retry-After"] == "45"
    assert "45 seconds" in body["detail"]
    # Refused before it was read: nothing of it is stored.
    assert Conversation.objects.count() == 3
    assert not Conversation.objects.filter(pk=refused_id).exists()
    assert rate_limited_count() == before + 1


@pytest.mark.django_db
@override_settings(WEBHOOK_RATE_LIMIT="3/min")
def test_another_source_is_not_limited(client: Client) -> None:
    with time_machine.travel(WINDOW_START, tick=False):
        for _ in range(3):
            assert post(client, address="10.0.0.1").status_code == 201
        assert post(client, address="10.0.0.1").status_code == 429
        for _ in range(3):
            assert post(client, address="10.0.0.2").status_code == 201
        assert post(client, address="10.0.0.2").status_code == 429


@pytest.mark.django_db
@override_settings(WEBHOOK_RATE_LIMIT="3/min")
def test_the_next_window_starts_a_new_count(client: Client) -> None:
    with time_machine.travel(WINDOW_START + 59, tick=False):
        for _ in range(3):
            assert post(client).status_code == 201
        response = post(client)
        assert response.status_code == 429
        assert response["Retry-After"] == "1"
    with time_machine.travel(WINDOW_START + 60, tick=False):
        assert post(client).status_code == 201


@pytest.mark.django_db
@override_settings(WEBHOOK_RATE_LIMIT="3/min")
def test_a_credential_is_the_source_whatever_the_address(client: Client) -> None:
    def status(address: str, authorization: str | None = None) -> int:
        headers = {"Authorization": authorization} if authorization else {}
        return int(post(client, address=address, headers=headers).status_code)

    with time_machine.travel(WINDOW_START, tick=False):
        for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
            assert status(address, "Bearer sender-a") == 201
        # The same sender from a fourth address is over its limit...
        assert status("10.0.0.4", "Bearer sender-a") == 429
        # ... while another credential, or Basic auth, from the same address is not.
        assert status("10.0.0.4", "Bearer sender-b") == 201
        assert status("10.0.0.4", "Basic c2VuZGVyOmE=") == 201
        # Without a credential the address counts, and 10.0.0.1 has not been used alone.
        assert status("10.0.0.1") == 201


@pytest.mark.django_db
@override_settings(WEBHOOK_RATE_LIMIT="3/min")
def test_x_forwarded_for_is_ignored_without_trusted_proxies(client: Client) -> None:
    assert settings.REST_FRAMEWORK.get("NUM_PROXIES") == 0
    with time_machine.travel(WINDOW_START, tick=False):
        for index in range(3):
            forwarded = f"192.0.2.{index}"
            assert post(client, headers={"X-Forwarded-For": forwarded}).status_code == 201
        assert post(client, headers={"X-Forwarded-For": "192.0.2.99"}).status_code == 429


@pytest.mark.django_db
def test_x_forwarded_for_names_the_client_behind_a_trusted_proxy(client: Client) -> None:
    behind_proxy = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    with (
        override_settings(WEBHOOK_RATE_LIMIT="3/min", REST_FRAMEWORK=behind_proxy),
        time_machine.travel(WINDOW_START, tick=False),
    ):
        for _ in range(3):
            assert post(client, headers={"X-Forwarded-For": "192.0.2.1"}).status_code == 201
        assert post(client, headers={"X-Forwarded-For": "192.0.2.1"}).status_code == 429
        # The same proxy address, another client behind it.
        assert post(client, headers={"X-Forwarded-For": "192.0.2.2"}).status_code == 201


@pytest.mark.django_db
@override_settings(WEBHOOK_RATE_LIMIT="")
def test_without_a_limit_nothing_is_limited(client: Client) -> None:
    with time_machine.travel(WINDOW_START, tick=False):
        for _ in range(20):
            assert post(client).status_code == 201
    assert Conversation.objects.count() == 20


def test_concurrent_requests_are_counted_exactly() -> None:
    """Many threads, one source: exactly the limit gets through (an atomic counter)."""
    factory = APIRequestFactory()
    allowed: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(10)

    def worker() -> None:
        throttle = WebhookRateThrottle()
        barrier.wait()
        for _ in range(5):
            request = Request(factory.post("/webhook/", REMOTE_ADDR="10.9.9.9"))
            result = throttle.allow_request(request, view=None)
            with lock:
                allowed.append(result)

    with override_settings(WEBHOOK_RATE_LIMIT="17/hour"):
        threads = [threading.Thread(target=worker) for _ in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert len(allowed) == 50
    assert allowed.count(True) == 17


@pytest.mark.django_db
def test_a_cache_that_is_down_lets_requests_through(client: Client) -> None:
    with socket.socket() as sock:  # a port nobody listens on: connections are refused
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    unreachable = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{closed_port}/0",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    with override_settings(WEBHOOK_RATE_LIMIT="1/min", CACHES=unreachable):
        for _ in range(3):
            assert post(client).status_code == 201
    assert Conversation.objects.count() == 3
