"""Concurrency on PostgreSQL, with real threads and connections (A-6, A-8)."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, connections
from django.test import Client
from django.utils import timezone

from parley.assistance.models import Delivery, IdempotencyKey
from parley.assistance.services._common import DUE
from parley.core.duework import claim_due, claim_one
from parley.outbox.models import OutboxEvent

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("sql_path")]


@pytest.fixture(autouse=True)
def _postgresql_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row locks and SKIP LOCKED are PostgreSQL's")


def in_threads(count: int, work: Any) -> list[Any]:
    barrier = threading.Barrier(count)

    def run(index: int) -> Any:
        try:
            barrier.wait()
            return work(index)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def test_ten_concurrent_posts_with_one_key_store_one_request() -> None:
    body = json.dumps({"topic": "sales", "description": "Customer wants 40 seats"})

    def post(_: int) -> Any:
        response = Client().post(
            "/assistance-requests/",
            data=body,
            content_type="application/json",
            headers={"Idempotency-Key": "concurrent-1"},
        )
        return response.status_code, response.json()

    answers = in_threads(10, post)
    assert {status for status, _ in answers} == {202}
    assert len({json.dumps(body, sort_keys=True) for _, body in answers}) == 1
    assert Delivery.objects.count() == 1
    assert IdempotencyKey.objects.count() == 1
    assert OutboxEvent.objects.filter(type="assistance.requested").count() == 1


def make_due(count: int) -> list[Any]:
    now = timezone.now()
    channel_id = 1
    from parley.assistance.models import Channel

    channel_id = Channel.objects.get(name="sales-slack").pk
    rows = [
        Delivery(
            purpose="assistance",
            topic="sales",
            channel_id=channel_id,
            status="PENDING",
            max_attempts=8,
            next_attempt_at=now - timedelta(seconds=1),
        )
        for _ in range(count)
    ]
    return [d.pk for d in Delivery.objects.bulk_create(rows)]


def test_concurrent_sweeps_claim_disjoint_rows() -> None:
    pks = make_due(200)

    def sweep(_: int) -> list[Any]:
        claimed: list[Any] = []
        while True:
            claim = claim_due(
                DUE,
                now=timezone.now(),
                lease=timedelta(minutes=1),
                limit=7,
                set_values={"status": "QUEUED"},
            )
            if not claim.pks:
                return claimed
            claimed.extend(claim.pks)

    batches = in_threads(6, sweep)
    claimed = [pk for batch in batches for pk in batch]
    assert sorted(claimed) == sorted(pks)  # each exactly once


def test_a_sweep_skips_the_rows_another_has_locked_instead_of_waiting() -> None:
    make_due(20)
    first_claimed = threading.Event()
    second_done = threading.Event()

    def run(index: int) -> list[Any]:
        from django.db import transaction

        if index == 0:
            with transaction.atomic():  # holds its rows' locks until the other has claimed
                claim = claim_due(DUE, now=timezone.now(), lease=timedelta(minutes=1), limit=10)
                first_claimed.set()
                assert second_done.wait(20)
            return claim.pks
        assert first_claimed.wait(20)
        claim = claim_due(DUE, now=timezone.now(), lease=timedelta(minutes=1), limit=10)
        second_done.set()
        return claim.pks

    first, second = in_threads(2, run)
    assert len(first) == len(second) == 10
    assert not set(first) & set(second)


def test_a_row_is_claimed_once_by_racing_runners() -> None:
    (pk,) = make_due(1)

    def claim(_: int) -> bool:
        return claim_one(DUE, pk, now=timezone.now(), lease=timedelta(minutes=1)) is not None

    assert sum(in_threads(8, claim)) == 1
