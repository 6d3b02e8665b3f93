"""Real brokers for the intake tests: RabbitMQ and Redis as they run here, moto's SQS server.

Each test gets names of its own (a RabbitMQ vhost per session, queue names
per test, a Redis database of its own), so runs of other suites on the same
servers never see its messages. Without a server the tests skip, unless
PARLEY_REQUIRE_SERVICES is set (CI), where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings

from parley.intake.consumer import EventConsumer
from parley.intake.transports import Transport, for_url
from parley.outbox.models import OutboxEvent
from tests.payloads import new_conversation, new_message

AMQP_HOST, AMQP_PORT = "127.0.0.1", 5672
# Redis database of the intake tests, on REDIS_URL's server.
INTAKE_REDIS_DB = 12
BROKERS = ["filesystem", "redis", "amqp", "sqs"]


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unavailable(what: str) -> None:
    if os.environ.get("PARLEY_REQUIRE_SERVICES"):
        pytest.fail(f"{what} is required (PARLEY_REQUIRE_SERVICES) but not available")
    pytest.skip(f"{what} is not available")


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def amqp_vhost() -> Iterator[str]:
    """A RabbitMQ vhost of this session, deleted at the end: amqp://guest:guest@.../vhost."""
    if not port_open(AMQP_HOST, AMQP_PORT) or shutil.which("rabbitmqctl") is None:
        unavailable("RabbitMQ on 127.0.0.1:5672 (with rabbitmqctl)")
    vhost = f"parley_test_{uuid.uuid4().hex[:10]}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    try:
        yield f"amqp://guest:guest@{AMQP_HOST}:{AMQP_PORT}/{vhost}"
    finally:
        rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="session")
def redis_intake_url() -> str:
    if not settings.REDIS_URL:
        unavailable("Redis (REDIS_URL)")
    parts = urllib.parse.urlsplit(settings.REDIS_URL)
    url = urllib.parse.urlunsplit(parts._replace(path=f"/{INTAKE_REDIS_DB}"))
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    except redis.RedisError:
        unavailable(f"Redis at {parts.hostname}:{parts.port}")
    finally:
        client.close()
    return url


@pytest.fixture(scope="session")
def sqs_endpoint(moto_server: str) -> Iterator[dict[str, str]]:
    """The standard AWS_* variables that point at moto's server (the root conftest's)."""
    env = {
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def create_fifo_queue(name: str) -> None:
    import boto3

    # A short visibility timeout: a killed consumer's messages come back within seconds.
    boto3.client("sqs").create_queue(
        QueueName=name, Attributes={"FifoQueue": "true", "VisibilityTimeout": "5"}
    )


@pytest.fixture
def broker(request: pytest.FixtureRequest, tmp_path: Any, settings: Any) -> dict[str, Any]:
    """The broker named by the test's parameter: {url, queue, options, env} for this test."""
    kind = request.param
    name = f"t{uuid.uuid4().hex[:10]}"
    env: dict[str, str] = {}
    options: dict[str, Any] = {}
    if kind == "filesystem":
        url = "filesystem://"
        folder = tmp_path / "intake"
        options = {
            "data_folder_in": str(folder / "messages"),
            "data_folder_out": str(folder / "messages"),
            "control_folder": str(folder / "control"),
            "processed_folder": str(folder / "processed"),
        }
    elif kind == "redis":
        url = request.getfixturevalue("redis_intake_url")
    elif kind == "amqp":
        url = request.getfixturevalue("amqp_vhost")
    else:
        env = request.getfixturevalue("sqs_endpoint")
        url = "sqs://"
        name = f"{name}.fifo"
        create_fifo_queue(name)
    return {"kind": kind, "url": url, "queue": name, "options": options, "env": env}


def transport_of(broker: dict[str, Any], partitions: int = 4) -> Transport:
    return for_url(
        broker["url"],
        queue=broker["queue"],
        partitions=partitions,
        transport_options=dict(broker["options"]),
    )


class ConsumerThread:
    """An EventConsumer running in a thread of the test process (not a process of its own)."""

    def __init__(self, transport: Transport, **options: Any) -> None:
        self.consumer = EventConsumer(transport, **options)
        self.thread = threading.Thread(target=self.consumer.run, daemon=True)

    def __enter__(self) -> EventConsumer:
        self.thread.start()
        return self.consumer

    def __exit__(self, *exc: object) -> None:
        self.consumer.stopping.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the consumer did not stop"


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def conversation_script(
    conversations: int, messages: int
) -> tuple[list[bytes], dict[str, list[str]]]:
    """Interleaved events of several conversations; and each one's message ids in order."""
    ids = [uuid.uuid4() for _ in range(conversations)]
    lines = [json.dumps(new_conversation(c)).encode() for c in ids]
    order: dict[str, list[str]] = {str(c): [] for c in ids}
    for n in range(messages):
        for c in ids:
            message_id = uuid.uuid4()
            order[str(c)].append(str(message_id))
            lines.append(json.dumps(new_message(message_id, c, f"message {n}")).encode())
    return lines, order


def applied_order(conversation_id: str) -> list[str]:
    """Message ids in the order their effects committed (the outbox's commit order)."""
    return [
        event.data["message_id"]
        for event in OutboxEvent.objects.filter(
            type="message.received", subject=conversation_id
        ).order_by("txid", "id")
    ]


def assert_in_order(order: dict[str, list[str]]) -> None:
    for conversation_id, message_ids in order.items():
        assert applied_order(conversation_id) == message_ids, conversation_id
