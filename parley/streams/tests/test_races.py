"""Concurrency on PostgreSQL, with real threads and connections (SPEC X-6, X-7).

Each thread has its own database connection, as each request of the live
process does; a barrier lines them up so that they really collide.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
from django.db import connection

from parley.streams import services
from parley.streams.errors import StreamClosed, TooManyStreams
from parley.streams.models import PixMessage, Stream
from parley.streams.pix.kind import PIX
from parley.streams.pix.services import messages_generate

pytestmark = pytest.mark.django_db(transaction=True)

ISPB = "32074986"
T = TypeVar("T")


@pytest.fixture(autouse=True)
def _postgresql_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises every writer; the races are PostgreSQL's")


def together(count: int, work: Callable[[int], T]) -> list[T | BaseException]:
    """Run ``work(i)`` in ``count`` threads released at once; results or exceptions."""
    barrier = threading.Barrier(count)

    def run(i: int) -> T | BaseException:
        try:
            barrier.wait(10)
            return work(i)
        except BaseException as exc:
            return exc
        finally:
            connection.close()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def test_of_ten_simultaneous_starts_exactly_six_open_a_stream() -> None:
    results = together(10, lambda _: services.stream_start(kind=PIX, key=ISPB, limit=1))

    opened = [r for r in results if isinstance(r, services.Begun)]
    refused = [r for r in results if isinstance(r, TooManyStreams)]
    assert (len(opened), len(refused)) == (6, 4), results
    assert sorted(Stream.objects.filter(closed_at__isnull=True).values_list("slot", flat=True)) == [
        1,
        2,
        3,
        4,
        5,
        6,
    ]
    assert all(r.headers["Retry-After"].isdigit() for r in refused)


def test_six_multipart_collectors_share_hundreds_of_messages_exactly_once() -> None:
    """A producer keeps storing while six collectors claim batches of up to 10."""
    total, rounds = 600, 6
    per_round = total // rounds
    produced = threading.Event()

    def produce() -> None:
        try:
            for _ in range(rounds):
                messages_generate(ispb=ISPB, count=per_round)
        finally:
            connection.close()
            produced.set()

    def collect(_: int) -> list[int]:
        got: list[int] = []
        begun = services.stream_start(kind=PIX, key=ISPB, limit=10)
        if begun.batch:
            got += begun.batch.item_ids
        idle = 0
        while idle < 3:
            batch = services.stream_claim(kind=PIX, stream_id=begun.stream_id, key=ISPB, limit=10)
            if batch is None:
                idle += produced.is_set()
                continue
            assert 1 <= len(batch.item_ids) <= 10
            got += batch.item_ids
            idle = 0
        return got

    producer = threading.Thread(target=produce)
    producer.start()
    results = together(6, collect)
    producer.join()

    collected = [item for r in results if isinstance(r, list) for item in r]
    assert not [r for r in results if isinstance(r, BaseException)], results
    duplicates = [item for item, n in Counter(collected).items() if n > 1]
    assert duplicates == []
    assert sorted(collected) == sorted(PixMessage.objects.values_list("id", flat=True))
    assert len(collected) == total
    assert sum(Stream.objects.values_list("delivered_count", flat=True)) == total
    # Everyone got work: the claims skip each other's locked rows rather than queue.
    assert sum(1 for r in results if isinstance(r, list) and r) >= 2


def test_two_streams_and_one_message_one_gets_it_once() -> None:
    streams = [services.stream_start(kind=PIX, key=ISPB, limit=1).stream_id for _ in range(2)]
    for _ in range(20):
        messages_generate(ispb=ISPB, count=1)
        results = together(
            2,
            lambda i: services.stream_claim(kind=PIX, stream_id=streams[i], key=ISPB, limit=10),
        )
        winners = [r for r in results if isinstance(r, services.Batch)]
        assert len(winners) == 1, results
        assert results.count(None) == 1
        assert len(winners[0].item_ids) == 1
    assert PixMessage.objects.filter(delivered_at__isnull=True).count() == 0


def test_a_delete_racing_a_claim_never_loses_nor_doubles_a_message() -> None:
    for _ in range(10):
        begun = services.stream_start(kind=PIX, key=ISPB, limit=1)
        interaction_id = services.stream_finish(kind=PIX, stream_id=begun.stream_id)
        messages_generate(ispb=ISPB, count=3)

        def act(
            i: int, stream_id: int = begun.stream_id, interaction_id: str = interaction_id
        ) -> Any:
            if i == 0:
                return services.stream_delete(kind=PIX, key=ISPB, interaction_id=interaction_id)
            return services.stream_claim(kind=PIX, stream_id=stream_id, key=ISPB, limit=10)

        deleted, claimed = together(2, act)
        assert deleted is None
        if isinstance(claimed, services.Batch):
            delivered = len(claimed.item_ids)  # the claim won: its answer has them
        else:
            assert claimed is None or isinstance(claimed, StreamClosed), claimed
            delivered = 0
        assert PixMessage.objects.filter(delivered_at__isnull=True).count() == 3 - delivered
        PixMessage.objects.all().delete()
