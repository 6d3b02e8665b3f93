"""Prometheus metrics at /metrics (O-3).

Counters are process-global, so every assertion compares a value read before
with one read after.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.test import Client
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from parley.conversations import services
from parley.conversations.models import Message, MessageGroup
from tests.payloads import new_conversation, new_message

EVENTS = "parley_webhook_events_total"
ORPHANS = "parley_orphan_messages_total"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def exposition_value(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return float(found.value)
    return None


@pytest.mark.django_db
def test_webhook_events_are_counted_by_type_and_result(post_event: Any, client: Client) -> None:
    counted = {
        ("NEW_CONVERSATION", "created"): 2,
        ("NEW_MESSAGE", "queued"): 3,
        ("NEW_MESSAGE", "buffered"): 1,
        ("NEW_MESSAGE", "replay"): 1,
        ("NEW_CONVERSATION", "conversation_exists"): 1,
        ("unknown", "invalid_payload"): 2,
    }
    before = {key: sample(EVENTS, type=key[0], result=key[1]) for key in counted}
    buffered_before = sample(ORPHANS, outcome="buffered")
    adopted_before = sample(ORPHANS, outcome="adopted")

    first, second = uuid.uuid4(), uuid.uuid4()
    assert post_event(new_conversation(first)).status_code == 201
    assert post_event(new_conversation(first)).status_code == 400  # conversation_exists
    replayed = new_message(uuid.uuid4(), first, "one")
    assert post_event(replayed).status_code == 202
    assert post_event(replayed).status_code == 202  # the same delivery again: a replay
    assert post_event(new_message(uuid.uuid4(), first, "two")).status_code == 202
    assert post_event(b"{not json").status_code == 400
    assert post_event({"type": "NEW_THING", "timestamp": "x", "data": {}}).status_code == 400
    # An orphan: buffered, then adopted when its conversation arrives.
    orphan = new_message(uuid.uuid4(), second, "early")
    assert post_event(orphan).json()["status"] == "buffered"
    assert post_event(new_conversation(second)).status_code == 201

    after = {key: sample(EVENTS, type=key[0], result=key[1]) for key in counted}
    assert {key: after[key] - before[key] for key in counted} == {
        ("NEW_CONVERSATION", "created"): 2,
        ("NEW_MESSAGE", "queued"): 2,
        ("NEW_MESSAGE", "buffered"): 1,
        ("NEW_MESSAGE", "replay"): 1,
        ("NEW_CONVERSATION", "conversation_exists"): 1,
        ("unknown", "invalid_payload"): 2,
    }
    assert sample(ORPHANS, outcome="buffered") == buffered_before + 1
    assert sample(ORPHANS, outcome="adopted") == adopted_before + 1

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    # The scrape shows the same numbers as the registry.
    created = exposition_value(text, EVENTS, type="NEW_CONVERSATION", result="created")
    assert created == after[("NEW_CONVERSATION", "created")]
    assert exposition_value(text, ORPHANS, outcome="buffered") == buffered_before + 1
    for family in ("parley_group_size_messages", "parley_reply_delay_seconds"):
        assert f"# TYPE {family} histogram" in text


@pytest.mark.django_db
def test_a_reply_records_its_delay_and_group_size(post_event: Any) -> None:
    delay_count = sample("parley_reply_delay_seconds_count")
    delay_sum = sample("parley_reply_delay_seconds_sum")
    size_count = sample("parley_group_size_messages_count")
    size_sum = sample("parley_group_size_messages_sum")
    conversation_id = uuid.uuid4()
    arrival = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)

    with time_machine.travel(arrival, tick=False):
        assert post_event(new_conversation(conversation_id)).status_code == 201
        for text in ("one", "two"):
            assert post_event(new_message(uuid.uuid4(), conversation_id, text)).status_code == 202
    group = MessageGroup.objects.get(conversation_id=conversation_id)

    reply_at = arrival + settings.GROUP_WINDOW + timedelta(seconds=1)
    with time_machine.travel(reply_at, tick=False):
        assert services.group_reply(group_id=group.pk).outcome is services.ReplyOutcome.REPLIED
        # A second run writes nothing and records nothing.
        assert services.group_reply(group_id=group.pk).outcome is services.ReplyOutcome.DONE

    assert Message.objects.filter(conversation_id=conversation_id, type="OUTBOUND").count() == 1
    assert sample("parley_reply_delay_seconds_count") == delay_count + 1
    expected_delay = (reply_at - arrival).total_seconds()
    assert sample("parley_reply_delay_seconds_sum") == pytest.approx(delay_sum + expected_delay)
    assert sample("parley_group_size_messages_count") == size_count + 1
    assert sample("parley_group_size_messages_sum") == size_sum + 2


@pytest.mark.django_db
def test_each_sweep_records_its_duration() -> None:
    count = sample("parley_sweep_duration_seconds_count")
    services.due_work_sweep()
    services.due_work_sweep()
    assert sample("parley_sweep_duration_seconds_count") == count + 2


INCREMENT = """
import sys
from parley.core import metrics
metrics.EVENTS.labels(type="MULTIPROCESS_TEST", result="ok").inc(float(sys.argv[1]))
metrics.REPLY_DELAY.observe(5.5)
"""
RENDER = """
import sys
from parley.core.metrics import render
payload, content_type = render()
sys.stdout.write(content_type + "\\n" + payload.decode())
"""


def run_python(code: str, *args: str, metrics_dir: Path) -> str:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_metrics_from_several_processes_are_summed(tmp_path: Path) -> None:
    """What several gunicorn workers and the Celery worker rely on."""
    run_python(INCREMENT, "2", metrics_dir=tmp_path)
    run_python(INCREMENT, "3", metrics_dir=tmp_path)
    assert len(list(tmp_path.glob("counter_*.db"))) == 2  # one file per process

    content_type, _, text = run_python(RENDER, metrics_dir=tmp_path).partition("\n")

    assert content_type.startswith("text/plain")
    assert exposition_value(text, EVENTS, type="MULTIPROCESS_TEST", result="ok") == 5.0
    assert exposition_value(text, "parley_reply_delay_seconds_count") == 2.0
    assert exposition_value(text, "parley_reply_delay_seconds_sum") == 11.0
