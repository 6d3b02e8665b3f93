"""The lifecycle with real processes (T-1, T-4, T-5): what ``make run`` shows.

A tenant set to a short ``idle_close_after``: its conversation is answered,
closes by itself for idleness (the scheduler's tick, run by the worker), its
transcript is written under ``var/objects/transcripts/`` and the facts reach
``var/objects/analytics/`` as CloudEvents JSON lines.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from parley.conversations.models import Conversation
from parley.tenants.models import Tenant
from parley.tenants.services import tenant_ensure
from tests.e2e.conftest import ROOT, Stack
from tests.payloads import new_conversation, new_message

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str, stack: Stack) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {timeout} s\n{stack.logs()}")


def analytics_lines(objects: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted((objects / "analytics").rglob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def idle_tenant(seconds: int) -> Tenant:
    tenant_id = tenant_ensure(tenant_id=settings.DEFAULT_TENANT_ID)
    Tenant.objects.filter(pk=tenant_id).update(idle_close_after=seconds)
    return Tenant.objects.get(pk=tenant_id)


def talk(stack: Stack) -> uuid.UUID:
    conversation_id, message_id = uuid.uuid4(), uuid.uuid4()
    assert stack.post(new_conversation(conversation_id)).status == 201
    assert stack.post(new_message(message_id, conversation_id, "Is it free?")).status == 202
    return conversation_id


def check_closed_and_archived(
    stack: Stack, conversation_id: uuid.UUID, tenant: Tenant, *, timeout: float
) -> Path:
    """The conversation closed for idleness after its reply, and its transcript is in place."""
    objects = stack.workdir / "var" / "objects"
    body = wait_for(
        lambda: (b := stack.get(f"/conversations/{conversation_id}/").body)["archived_at"] and b,
        timeout=timeout,
        what="the idle close and the archive",
        stack=stack,
    )
    assert (body["status"], body["close_reason"]) == ("CLOSED", "idle")
    assert [m["type"] for m in body["messages"]] == ["INBOUND", "OUTBOUND"]
    day = body["closed_at"][:10]
    transcript = objects / f"transcripts/tenant={tenant.pk}/dt={day}/{conversation_id}.json"
    assert json.loads(transcript.read_bytes())["messages"] == body["messages"]
    conversation = Conversation.objects.get(pk=conversation_id)
    assert conversation.transcript_sha256 == hashlib.sha256(transcript.read_bytes()).hexdigest()
    return objects


def test_an_idle_conversation_closes_is_archived_and_exported(stack_factory: Any) -> None:
    stack = stack_factory(
        window=0.5,
        tolerance=1.0,
        LIFECYCLE_INTERVAL_SECONDS="1",
        ANALYTICS_EXPORT_SECONDS="2",
    )
    tenant = idle_tenant(2)
    conversation_id = talk(stack)

    objects = check_closed_and_archived(stack, conversation_id, tenant, timeout=30)

    def exported() -> dict[str, dict[str, Any]]:
        found = {
            line["type"]: line
            for line in analytics_lines(objects)
            if line["subject"] == str(conversation_id)
        }
        return found if "transcript.archived" in found else {}

    lines = wait_for(exported, timeout=30, what="the analytics export", stack=stack)
    assert set(lines) == {
        "conversation.opened",
        "message.received",
        "reply.sent",
        "conversation.closed",
        "transcript.archived",
    }
    assert lines["conversation.closed"]["data"]["reason"] == "idle"
    assert lines["conversation.closed"]["source"] == f"/parley/tenants/{tenant.pk}"
    assert lines["conversation.closed"]["specversion"] == "1.0"
    ids = [line["id"] for line in analytics_lines(objects)]
    assert len(ids) == len(set(ids))


@pytest.mark.slow
def test_at_the_default_intervals_a_tick_closes_and_archives_within_them(
    stack_factory: Any,
) -> None:
    """LIFECYCLE_INTERVAL_SECONDS at its default (10 s); the export is run by hand."""
    stack = stack_factory(window=0.5, tolerance=1.0)
    tenant = idle_tenant(1)
    conversation_id = talk(stack)

    objects = check_closed_and_archived(stack, conversation_id, tenant, timeout=35)
    result = subprocess.run(
        [sys.executable, "manage.py", "export_analytics"],
        cwd=ROOT,
        env={**os.environ, **stack.env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    closed = [
        line
        for line in analytics_lines(objects)
        if line["type"] == "conversation.closed" and line["subject"] == str(conversation_id)
    ]
    assert [line["data"]["reason"] for line in closed] == ["idle"]
