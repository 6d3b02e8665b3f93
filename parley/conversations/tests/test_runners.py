"""Reply runners (G-8): claim what is due as there is room, write concurrently, record each."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.db import connection, connections
from django.test import override_settings

from config.celery import app as celery_app
from parley.conversations import services
from parley.conversations.models import Message, MessageGroup
from parley.conversations.services import batches
from parley.conversations.tests import writers
from parley.conversations.tests.helpers import (
    T0,
    groups_of,
    ingest,
    open_conversation,
    replies_of,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sql_path")]

W = "parley.conversations.tests.writers."


@pytest.fixture(autouse=True)
def _fresh_writers() -> Iterator[None]:
    writers.reset()
    yield
    writers.reset()


def due_conversations(clock: time_machine.Traveller, count: int, content: str = "hi") -> list[Any]:
    conversations = [open_conversation() for _ in range(count)]
    for conversation_id in conversations:
        ingest(conversation_id, content)
    clock.shift(5)
    return conversations


@override_settings(REPLY_WRITER=W + "recording")
def test_a_runner_answers_every_due_group_then_stops(clock: time_machine.Traveller) -> None:
    conversations = due_conversations(clock, 3)
    later = open_conversation()
    ingest(later)  # due in 5 s: not this runner's

    report = services.replies_run(budget=30)

    assert (report.replied, report.failed_attempts, report.more) == (3, 0, False)
    assert all(len(replies_of(c)) == 1 for c in conversations)
    assert replies_of(later) == []
    assert [g.status for g in groups_of(later)] == ["OPEN"]
    [request] = [r for r in writers.received if r.conversation_id == conversations[0]]
    tenant_id = groups_of(conversations[0])[0].conversation.tenant_id
    assert (request.attempt, request.tenant_id) == (1, tenant_id)


@override_settings(REPLY_WRITER=W + "async_sleepy", REPLY_ASYNC_CONCURRENCY=4)
def test_an_async_writer_runs_many_calls_at_a_time_in_one_runner(
    clock: time_machine.Traveller,
) -> None:
    conversations = due_conversations(clock, 10)

    report = services.replies_run(budget=30)

    assert report.replied == 10
    assert writers.most_at_once == 4  # bounded by REPLY_ASYNC_CONCURRENCY
    assert all(len(replies_of(c)) == 1 for c in conversations)


@override_settings(REPLY_WRITER=W + "sleepy")
def test_a_plain_function_writer_runs_one_call_at_a_time(clock: time_machine.Traveller) -> None:
    due_conversations(clock, 3)

    assert services.replies_run(budget=30).replied == 3
    assert writers.most_at_once == 1


@override_settings(REPLY_WRITER=W + "async_sleepy", REPLY_ASYNC_CONCURRENCY=4)
def test_a_slow_call_does_not_hold_up_the_others(
    clock: time_machine.Traveller, monkeypatch: pytest.MonkeyPatch
) -> None:
    [slow] = due_conversations(clock, 1, content="slow")
    quick = due_conversations(clock, 6)
    recorded: list[int] = []
    real_record = batches.record_replies

    def record(written: Any) -> int:  # notes the order in which replies are recorded
        recorded.extend(w.claimed.group_id for w in written)
        return real_record(written)

    monkeypatch.setattr(batches, "record_replies", record)

    assert services.replies_run(budget=30).replied == 7
    # The 2 s call held one slot; the other six were written and recorded meanwhile.
    assert len(recorded) == 7
    assert recorded[-1] == groups_of(slow)[0].pk
    assert all(len(replies_of(c)) == 1 for c in [slow, *quick])


@override_settings(REPLY_WRITER=W + "recording")
def test_a_runner_that_spent_its_budget_stops_taking_groups_and_says_so(
    clock: time_machine.Traveller,
) -> None:
    due_conversations(clock, 2)
    handovers: list[bool] = []

    report = services.replies_run(budget=0, handover=lambda: handovers.append(True))

    assert (report.replied, report.more, handovers) == (0, True, [True])
    assert MessageGroup.objects.filter(status="CLOSED").count() == 0  # nothing claimed


def test_on_postgresql_a_runner_writes_a_group_in_three_round_trips(
    sql_path: str, clock: time_machine.Traveller, django_assert_num_queries: Any
) -> None:
    if sql_path != "database":
        pytest.skip("the portable steps take a transaction per step")
    [conversation_id] = due_conversations(clock, 1)

    # Claim, read the messages and history, record; then one claim that finds nothing.
    with django_assert_num_queries(4):
        assert services.replies_run(budget=30).replied == 1
    assert len(replies_of(conversation_id)) == 1


@pytest.mark.django_db(transaction=True)
def test_on_postgresql_a_claim_skips_a_conversation_someone_else_holds(sql_path: str) -> None:
    if sql_path != "database":
        pytest.skip("the claim function's; the portable claim waits for the lock")
    with time_machine.travel(T0, tick=False) as clock:
        held, free = due_conversations(clock, 2)
        other = connections.create_connection("default")
        try:
            other.set_autocommit(False)
            with other.cursor() as cursor:  # a NEW_MESSAGE for "held", mid-transaction
                cursor.execute(
                    "SELECT 1 FROM conversations_conversation WHERE id = %s FOR UPDATE", [held]
                )
            claimed = batches.claim_due(10)  # returns at once instead of waiting
            assert [c.conversation_id for c in claimed] == [free]
            other.rollback()
        finally:
            other.close()
        assert [c.conversation_id for c in batches.claim_due(10)] == [held]


@pytest.mark.django_db(transaction=True)
@override_settings(REPLY_WRITER=W + "sleepy")
def test_concurrent_runners_answer_each_group_exactly_once(sql_path: str) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("threads with their own connections need PostgreSQL")
    with time_machine.travel(T0, tick=False) as clock:
        conversations = due_conversations(clock, 24)
        barrier = threading.Barrier(4)
        reports: list[Any] = []

        def run() -> None:
            barrier.wait()
            try:
                reports.append(services.replies_run(budget=30))
            finally:
                connection.close()

        threads = [threading.Thread(target=run) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert sum(r.replied for r in reports) == 24
    assert all(r.replied > 0 for r in reports)  # the claims spread over the runners
    per_group = Counter(
        Message.objects.filter(conversation_id__in=conversations, type="OUTBOUND").values_list(
            "reply_to_id", flat=True
        )
    )
    assert len(per_group) == 24
    assert set(per_group.values()) == {1}
    assert set(MessageGroup.objects.values_list("reply_attempts", flat=True)) == {1}


@pytest.fixture
def runner_queue() -> Callable[[], int]:
    """The broker's task queue, emptied first: how many tasks wait in it.

    Nothing consumes it in these tests, so it shows what the sweep published.
    """

    def waiting() -> int:
        with celery_app.connection_for_read() as conn:
            channel: Any = conn.default_channel
            return int(channel.queue_declare(QUEUE, passive=True).message_count)

    with celery_app.connection_for_write() as conn:
        channel: Any = conn.default_channel
        channel.queue_declare(QUEUE)
        channel.queue_purge(QUEUE)
    return waiting


QUEUE = "celery"


@override_settings(REPLY_WRITER=W + "recording", REPLY_RUNNER_BURST=2)
def test_the_sweep_starts_runners_for_a_custom_writer(
    clock: time_machine.Traveller, runner_queue: Callable[[], int]
) -> None:
    conversations = due_conversations(clock, 5)

    report = services.due_work_sweep()

    # One runner per due group, at most REPLY_RUNNER_BURST; the sweep writes nothing.
    assert (report.groups_replied, report.runners_started, runner_queue()) == (0, 2, 2)
    assert all(replies_of(c) == [] for c in conversations)
    # A runner taken from the queue answers everything due.
    assert services.replies_run(budget=30).replied == 5
    assert services.due_work_sweep().runners_started == 0  # nothing due any more
    assert runner_queue() == 2


@override_settings(REPLY_WRITER=W + "async_sleepy", REPLY_ASYNC_CONCURRENCY=4)
def test_the_sweep_starts_one_runner_per_concurrency_worth_of_due_groups_for_an_async_writer(
    clock: time_machine.Traveller, runner_queue: Callable[[], int]
) -> None:
    due_conversations(clock, 9)

    assert services.due_work_sweep().runners_started == 3
    assert runner_queue() == 3


@override_settings(REPLY_WRITER=W + "recording", REPLY_RUNNER="sweep")
def test_a_custom_writer_can_be_called_by_the_sweep_itself(clock: time_machine.Traveller) -> None:
    conversations = due_conversations(clock, 3)

    report = services.due_work_sweep()

    assert (report.groups_replied, report.runners_started) == (3, 0)
    assert all(len(replies_of(c)) == 1 for c in conversations)


def test_the_default_writer_is_called_by_the_sweep(clock: time_machine.Traveller) -> None:
    conversations = due_conversations(clock, 2)
    assert services.due_work_sweep().groups_replied == 2
    assert all(len(replies_of(c)) == 1 for c in conversations)


@override_settings(REPLY_WRITER=W + "recording")
def test_a_runner_records_the_writers_text_as_the_reply(clock: time_machine.Traveller) -> None:
    [conversation_id] = due_conversations(clock, 1)
    [group] = groups_of(conversation_id)
    message_id = Message.objects.get(group=group).pk

    assert services.replies_run(budget=30).replied == 1

    [reply] = replies_of(conversation_id)
    assert reply.content == f"Received messages:\n{message_id}"
    assert (reply.reply_to_id, reply.timestamp) == (group.pk, T0 + timedelta(seconds=5))
    group.refresh_from_db()
    assert (group.status, group.reply_due_at, group.reply_attempts) == ("REPLIED", None, 1)
