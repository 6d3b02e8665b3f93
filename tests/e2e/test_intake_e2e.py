"""The queue consumer as real processes (Q-4 to Q-8): racing, killed, stopped, a broker restart.

``manage.py consume`` runs in processes of their own against RabbitMQ and
Redis as they run here and moto's SQS server, on the test database.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from parley.conversations.models import Message
from parley.intake.models import DeadLetter, InboxEvent, PartitionLease
from parley.intake.publish import publish_events
from tests.brokers import (
    assert_in_order,
    conversation_script,
    rabbitmqctl,
    transport_of,
    wait_for,
)
from tests.e2e.conftest import ROOT, _database_url
from tests.payloads import new_conversation, new_message

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]

LEASE_SECONDS = 3


class Consumers:
    """``manage.py consume`` processes on one broker, with their logs."""

    def __init__(self, broker: dict[str, Any], workdir: Path, partitions: int = 4) -> None:
        self.broker = broker
        self.workdir = workdir
        self.partitions = partitions
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "INTAKE_"))}
        options = dict(self.broker["options"])
        env.update(
            DJANGO_SETTINGS_MODULE="config.settings",
            PARLEY_ENV="development",
            PARLEY_VAR_DIR=str(self.workdir / "var"),
            DATABASE_URL=_database_url(),
            INTAKE_BROKER_URL=self.broker["url"],
            INTAKE_QUEUE=self.broker["queue"],
            INTAKE_PARTITIONS=str(self.partitions),
            INTAKE_TRANSPORT_OPTIONS=json.dumps(options),
            INTAKE_LEASE_SECONDS=str(LEASE_SECONDS),
            INTAKE_LAG_SECONDS="1",
            LOG_FORMAT="json",
            PYTHONUNBUFFERED="1",
            **self.broker["env"],
        )
        env.update(extra)
        return env

    def start(self, *, slow_ack: float = 0.0, workers: int = 3) -> subprocess.Popen[bytes]:
        index = len(self.procs)
        log = self.workdir / f"consumer-{index}.log"
        if slow_ack:
            argv = [sys.executable, "-m", "tests.e2e.intake_slow_ack"]
        else:
            argv = [sys.executable, "manage.py", "consume"]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=self.env(ACK_DELAY=str(slow_ack), INTAKE_WORKERS=str(workers)),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        self.logs.append(log)
        wait_for(lambda: b"intake_ready" in log.read_bytes(), 60, f"consumer {index} ready")
        return proc

    def log(self, index: int) -> str:
        return self.logs[index].read_text(errors="replace")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def dump(self) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}" for log in self.logs
        )


@pytest.fixture
def consumers(
    broker: dict[str, Any], tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Consumers]:
    running = Consumers(broker, tmp_path)
    failed_before = request.session.testsfailed
    try:
        yield running
    finally:
        running.stop()
        if request.session.testsfailed > failed_before:
            print(running.dump())


@pytest.mark.parametrize("broker", ["redis", "amqp", "sqs"], indirect=True)
def test_two_consumers_race_on_interleaved_conversations_in_order_with_poison_between(
    consumers: Consumers,
) -> None:
    lines, order = conversation_script(conversations=12, messages=10)
    poison = [b"{not json", b"\xff\xfe", b'{"type": "NOPE", "timestamp": "2025-01-01T00:00:00Z"}']
    consumers.start()
    consumers.start()
    if consumers.broker["kind"] != "sqs":
        # Both hold partitions: the leases split them between the two.
        wait_for(
            lambda: (
                PartitionLease.objects.filter(owner__isnull=False)
                .values("owner")
                .distinct()
                .count()
                == 2
            ),
            30,
            "the partitions to be shared",
        )
    transport = transport_of(consumers.broker, partitions=consumers.partitions)
    half = len(lines) // 2
    publish_events(lines[:half] + poison + lines[half:], transport=transport)
    wait_for(
        lambda: InboxEvent.objects.count() == len(lines) and DeadLetter.objects.count() == 3,
        120,
        "every event applied and the poison dead-lettered",
    )
    assert_in_order(order)
    assert Message.objects.count() == 12 * 10
    assert sorted(DeadLetter.objects.values_list("code", flat=True)) == [
        "invalid_json",
        "invalid_json",
        "unknown_type",
    ]


@pytest.mark.parametrize("broker", ["redis", "amqp", "sqs"], indirect=True)
def test_a_consumer_killed_between_commit_and_ack_applies_nothing_twice(
    consumers: Consumers,
) -> None:
    lines, order = conversation_script(conversations=3, messages=4)
    transport = transport_of(consumers.broker, partitions=consumers.partitions)
    publish_events(lines, transport=transport)
    slow = consumers.start(slow_ack=60, workers=3)
    # Batches have committed; their workers now hold the acks back.
    wait_for(lambda: InboxEvent.objects.count() >= 3, 60, "commits")
    time.sleep(0.5)
    committed = InboxEvent.objects.count()
    assert "committed" in consumers.log(0)
    os.killpg(slow.pid, signal.SIGKILL)
    slow.wait()
    consumers.start()
    wait_for(lambda: InboxEvent.objects.count() == len(lines), 90, "every event applied")
    # The broker handed the committed messages again (nothing was acked): duplicates.
    wait_for(
        lambda: consumers.log(1).count("intake_duplicate") >= committed,
        30,
        "every committed redelivery to be seen as a duplicate",
    )
    assert InboxEvent.objects.count() == len(lines)
    assert Message.objects.count() == 3 * 4
    assert_in_order(order)
    assert not DeadLetter.objects.exists()


@pytest.mark.parametrize("broker", ["amqp", "redis"], indirect=True)
def test_sigterm_finishes_and_acknowledges_the_events_in_hand(consumers: Consumers) -> None:
    lines, _ = conversation_script(conversations=2, messages=3)
    transport = transport_of(consumers.broker, partitions=consumers.partitions)
    publish_events(lines, transport=transport)
    slow = consumers.start(slow_ack=1.5)
    wait_for(lambda: InboxEvent.objects.exists(), 60, "a first commit")
    os.killpg(slow.pid, signal.SIGTERM)
    assert slow.wait(timeout=60) == 0
    assert "intake_stopped" in consumers.log(0)
    applied = InboxEvent.objects.count()
    consumers.start()
    wait_for(lambda: InboxEvent.objects.count() == len(lines), 60, "the rest applied")
    time.sleep(LEASE_SECONDS)
    # What the first consumer committed it also acknowledged: nothing came back.
    assert "intake_duplicate" not in consumers.log(1), (applied, consumers.log(1)[-2000:])


@pytest.mark.parametrize("broker", ["amqp"], indirect=True)
def test_a_rabbitmq_restart_mid_run_loses_nothing_and_applies_nothing_twice(
    consumers: Consumers,
) -> None:
    lines, order = conversation_script(conversations=8, messages=25)
    consumers.start()
    consumers.start()
    transport = transport_of(consumers.broker, partitions=consumers.partitions)
    published: list[int] = []

    def publish() -> None:
        for start in range(0, len(lines), 10):
            published.append(
                publish_events(lines[start : start + 10], transport=transport).published
            )
            time.sleep(0.05)

    publisher = threading.Thread(target=publish)
    publisher.start()
    wait_for(lambda: InboxEvent.objects.count() > 20, 60, "the run to be under way")
    rabbitmqctl("stop_app")
    try:
        time.sleep(2)
    finally:
        rabbitmqctl("start_app")
    publisher.join(timeout=180)
    assert sum(published) == len(lines)
    wait_for(lambda: InboxEvent.objects.count() == len(lines), 150, "every event applied")
    assert Message.objects.count() == 8 * 25
    assert_in_order(order)
    logs = consumers.log(0) + consumers.log(1)
    assert "intake_connection_lost" in logs
    assert logs.count("intake_ready") >= 3  # both started, at least one came back


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_a_slow_conversation_holds_up_no_other(consumers: Consumers) -> None:
    """Parallelism, measured: one conversation's row is locked; the others still apply."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL's row locks")
    stuck = uuid.uuid4()
    transport = transport_of(consumers.broker, partitions=1)
    consumers.partitions = 1  # one partition: the others share the slow one's queue
    publish_events([json.dumps(new_conversation(stuck)).encode()], transport=transport)
    consumers.start(workers=4)
    wait_for(lambda: InboxEvent.objects.count() == 1, 30, "the conversation")
    lines, order = conversation_script(conversations=6, messages=5)
    stuck_message = json.dumps(new_message(uuid.uuid4(), stuck, "stuck")).encode()
    import psycopg

    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"],
        dbname=db["NAME"],
        autocommit=False,
    ) as holder:
        holder.execute("SELECT 1 FROM conversations_conversation WHERE id = %s FOR UPDATE", [stuck])
        started = time.monotonic()
        publish_events([stuck_message, *lines], transport=transport)
        wait_for(
            lambda: InboxEvent.objects.count() == 1 + len(lines), 30, "the other conversations"
        )
        others_took = time.monotonic() - started
        assert not Message.objects.filter(conversation_id=stuck).exists()
        holder.rollback()
    wait_for(lambda: Message.objects.filter(conversation_id=stuck).exists(), 30, "the stuck one")
    assert_in_order(order)
    print(
        f"\nwhile one conversation was blocked, {len(lines)} events of 6 others applied "
        f"in {others_took:.2f} s"
    )
