"""Races on PostgreSQL (T-2, T-5): threads with their own connections, released together.

Two schedulers tick at once; a manual close, the idle sweep and a daily close
hit one conversation at once, while archivers run: each conversation closes
once, each daily close runs once, each transcript is written once (one
version on a versioned bucket) and recorded once.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
import time_machine
from django.db import connection

from conftest import Bucket
from parley.conversations import services as conversation_services
from parley.conversations.models import Conversation
from parley.conversations.tests import test_races as conversation_races
from parley.lifecycle import services
from parley.lifecycle.models import ScheduledClose
from parley.lifecycle.services import closes
from parley.outbox.models import OutboxEvent
from parley.tenants.models import Tenant

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 3, 8, 7, 0, tzinfo=UTC)  # 02:30 New York on 2026-03-08 fires here


@pytest.fixture(autouse=True)
def _postgresql_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("races need PostgreSQL's row locks and concurrent connections")


def race(*calls: Callable[[], Any], moment: datetime) -> list[Any]:
    """The conversations tests' race, on a clock that starts at ``moment`` and runs."""
    with time_machine.travel(moment, tick=True):
        return conversation_races.race(*calls)


def closes_of(conversation_ids: list[uuid.UUID]) -> Counter[str]:
    subjects = OutboxEvent.objects.filter(type="conversation.closed").values_list(
        "subject", flat=True
    )
    wanted = {str(c) for c in conversation_ids}
    return Counter(s for s in subjects if s in wanted)


def test_two_schedulers_ticking_together_run_each_daily_close_once(
    make_tenant: Callable[..., Tenant], open_conversation: Any
) -> None:
    for _ in range(8):
        tenant = make_tenant(zone="America/New_York", daily=time(2, 30), idle=None)
        with time_machine.travel(T0 - timedelta(hours=1), tick=False):
            ids = [open_conversation(tenant) for _ in range(12)]
        race(services.lifecycle_tick, services.lifecycle_tick, moment=T0 - timedelta(minutes=30))
        assert ScheduledClose.objects.filter(tenant=tenant).count() == 1

        reports = race(services.lifecycle_tick, services.lifecycle_tick, moment=T0)

        assert not [r for r in reports if isinstance(r, Exception)], reports
        assert sum(r.scheduled_closed for r in reports) == 12
        run = ScheduledClose.objects.get(tenant=tenant, local_date=T0.date())
        assert (run.status, run.closed_count) == ("DONE", 12)
        assert set(closes_of(ids).values()) == {1}
        assert len(closes_of(ids)) == 12
        assert set(
            Conversation.objects.filter(pk__in=ids).values_list("close_reason", flat=True)
        ) == {"scheduled"}


def test_two_idle_sweeps_close_each_conversation_once(
    make_tenant: Callable[..., Tenant], open_conversation: Any, settings: Any
) -> None:
    settings.LIFECYCLE_BATCH_SIZE = 5
    tenant = make_tenant(idle=60)
    with time_machine.travel(T0, tick=False):
        ids = [open_conversation(tenant) for _ in range(40)]

    results = race(
        services.idle_close_sweep, services.idle_close_sweep, moment=T0 + timedelta(hours=1)
    )

    assert sum(closed for closed, _ in results) == 40
    assert set(closes_of(ids).values()) == {1}
    assert len(closes_of(ids)) == 40


@pytest.mark.parametrize("versioned", [False, True])
def test_racing_closes_and_archivers_write_one_transcript(
    make_tenant: Callable[..., Tenant],
    open_conversation: Any,
    settings: Any,
    bucket: Bucket,
    versioned: bool,
) -> None:
    if versioned:
        bucket.client.put_bucket_versioning(
            Bucket=bucket.name, VersioningConfiguration={"Status": "Enabled"}
        )
    settings.STORAGES = {**settings.STORAGES, "objects": bucket.storage(prefix="archive")}
    tenant = make_tenant(zone="UTC", daily=time(7, 0), idle=60)
    conversations = []
    for _ in range(6):
        with time_machine.travel(T0 - timedelta(hours=1), tick=False):
            conversation_id = open_conversation(tenant)
            services.daily_closes_plan()
        run = ScheduledClose.objects.get(tenant=tenant, status="PENDING")
        conversations.append(conversation_id)

        def manual(c: uuid.UUID = conversation_id) -> Any:
            return conversation_services.conversation_close(conversation_id=c)

        def idle(c: uuid.UUID = conversation_id) -> Any:
            return closes._close(c, "idle", idle_since=T0)

        def scheduled(r: int = run.pk) -> Any:
            return services.daily_close_run(run_id=r)

        def archive(c: uuid.UUID = conversation_id) -> Any:
            return services.transcript_archive(conversation_id=c)

        race(manual, idle, scheduled, archive, archive, moment=T0)
        race(archive, archive, services.transcripts_archive_sweep, moment=T0 + timedelta(seconds=5))
        # The next round's daily close is for the next local date.
        ScheduledClose.objects.filter(tenant=tenant).delete()

        conversation = Conversation.objects.get(pk=conversation_id)
        key = f"archive/transcripts/tenant={tenant.pk}/dt=2026-03-08/{conversation_id}.json"
        assert conversation.status == "CLOSED"
        assert closes_of([conversation_id]) == {str(conversation_id): 1}
        assert bucket.names(key) == [key]
        assert bucket.versions(key) == 1
        assert conversation.transcript_sha256 == hashlib.sha256(bucket.read(key)).hexdigest()
        archived = OutboxEvent.objects.filter(
            type="transcript.archived", subject=str(conversation_id)
        )
        assert archived.count() == 1
