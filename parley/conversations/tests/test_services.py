"""Grouping, buffering and exactly-once replies, on the real database, under a controlled clock."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.core.checks import run_checks
from django.test import override_settings
from kombu.exceptions import OperationalError as KombuOperationalError

from parley.conversations import services
from parley.conversations.models import BufferedMessage, Conversation, Message, MessageGroup
from parley.conversations.replies import ReplyRequest
from parley.conversations.services import ReplyOutcome
from parley.conversations.services import replies as reply_path
from parley.conversations.tasks import group_reply_task
from parley.core.errors import (
    BufferExpired,
    ConversationAlreadyClosed,
    ConversationClosed,
    ConversationExists,
    ConversationNotFound,
    MessageIdConflict,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sql_path")]

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
EVENT_TIME = datetime(2025, 6, 4, 14, 20, 5, tzinfo=UTC)


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def ingest(
    conversation_id: uuid.UUID,
    *,
    content: str = "hi",
    message_id: uuid.UUID | None = None,
    timestamp: datetime = EVENT_TIME,
) -> services.Ingested:
    return services.message_ingest(
        message_id=message_id or uuid.uuid4(),
        conversation_id=conversation_id,
        content=content,
        timestamp=timestamp,
    )


def open_conversation() -> uuid.UUID:
    conversation_id = uuid.uuid4()
    services.conversation_open(conversation_id=conversation_id)
    return conversation_id


def groups_of(conversation_id: uuid.UUID) -> list[MessageGroup]:
    return list(MessageGroup.objects.filter(conversation_id=conversation_id).order_by("pk"))


def replies_of(conversation_id: uuid.UUID) -> list[Message]:
    return list(Message.objects.filter(conversation_id=conversation_id, type="OUTBOUND"))


def reply_all_due() -> None:
    for group in MessageGroup.objects.exclude(status="REPLIED"):
        services.group_reply(group_id=group.pk)


# --- G-1: grouping --------------------------------------------------------------


def test_second_message_within_window_joins_the_group(clock: time_machine.Traveller) -> None:
    conversation_id = open_conversation()
    first = ingest(conversation_id)
    clock.shift(4.9)
    second = ingest(conversation_id)

    [group] = groups_of(conversation_id)
    assert set(group.messages.values_list("id", flat=True)) == {first.id, second.id}
    assert group.status == "OPEN"
    # Trailing debounce: the window restarts at the last message.
    assert group.reply_due_at == T0 + timedelta(seconds=9.9)


@pytest.mark.django_db(transaction=True)
def test_on_postgresql_a_message_is_stored_in_one_round_trip(
    sql_path: str, clock: time_machine.Traveller, django_assert_num_queries: Any
) -> None:
    if sql_path != "database":
        pytest.skip("the Python steps take a transaction and several statements")
    conversation_id = open_conversation()
    with django_assert_num_queries(1):  # a new group
        first = ingest(conversation_id)
    clock.shift(1)
    with django_assert_num_queries(1):  # joining it
        second = ingest(conversation_id)

    [group] = groups_of(conversation_id)
    assert set(group.messages.values_list("id", flat=True)) == {first.id, second.id}
    assert group.reply_due_at == T0 + timedelta(seconds=6)


def test_on_postgresql_repeated_intake_statements_are_prepared(sql_path: str) -> None:
    from django.db import connection

    if sql_path != "database":
        pytest.skip("about the PostgreSQL intake function")
    conversation_id = open_conversation()
    for _ in range(6):  # psycopg prepares a statement on its sixth run
        ingest(conversation_id)
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any("parley_message_ingest" in statement for statement in prepared), prepared


@pytest.mark.django_db(transaction=True)
def test_a_broker_that_is_down_does_not_fail_a_close(monkeypatch: pytest.MonkeyPatch) -> None:
    def broker_down(*args: object, **kwargs: object) -> None:
        raise KombuOperationalError("Error 111 connecting to the broker")

    monkeypatch.setattr(group_reply_task, "delay", broker_down)
    conversation_id = open_conversation()
    ingest(conversation_id)

    conversation = services.conversation_close(conversation_id=conversation_id)

    assert conversation.status == "CLOSED"
    # Committed and due now: the next sweep answers it without the task.
    [group] = groups_of(conversation_id)
    assert (group.status, group.reply_due_at) == ("CLOSED", group.closed_at)
    assert services.due_work_sweep().groups_replied == 1
    assert len(replies_of(conversation_id)) == 1


def test_message_after_the_window_starts_a_new_group(clock: time_machine.Traveller) -> None:
    conversation_id = open_conversation()
    first = ingest(conversation_id)
    clock.shift(5.1)
    second = ingest(conversation_id)

    old, new = groups_of(conversation_id)
    assert list(old.messages.values_list("id", flat=True)) == [first.id]
    assert list(new.messages.values_list("id", flat=True)) == [second.id]
    # The old group's window had passed: it is closed and its reply due now.
    assert old.status == "CLOSED"
    assert old.reply_due_at == T0 + timedelta(seconds=5.1)
    assert new.status == "OPEN"


def test_group_is_not_answered_before_its_window_passes(clock: time_machine.Traveller) -> None:
    conversation_id = open_conversation()
    ingest(conversation_id)
    [group] = groups_of(conversation_id)
    clock.shift(4.9)

    result = services.group_reply(group_id=group.pk)

    assert result.outcome is ReplyOutcome.NOT_DUE
    assert result.due_at == T0 + timedelta(seconds=5)
    assert replies_of(conversation_id) == []


def test_a_single_message_is_a_group_of_one_answered_after_the_window(
    clock: time_machine.Traveller,
) -> None:
    conversation_id = open_conversation()
    message = ingest(conversation_id)
    [group] = groups_of(conversation_id)
    clock.shift(5)

    assert services.group_reply(group_id=group.pk).outcome is ReplyOutcome.REPLIED

    [reply] = replies_of(conversation_id)
    assert reply.content == f"Received messages:\n{message.id}"
    assert reply.reply_to_id == group.pk
    assert reply.timestamp == T0 + timedelta(seconds=5)
    group.refresh_from_db()
    assert (group.status, group.reply_due_at, group.replied_at) == (
        "REPLIED",
        None,
        reply.timestamp,
    )


@override_settings(GROUP_MAX_WAIT=timedelta(seconds=10))
def test_max_wait_closes_a_group_whatever_arrives(clock: time_machine.Traveller) -> None:
    conversation_id = open_conversation()
    ids = []
    for _ in range(4):  # at 0, 3, 6, 9 s: each within 5 s of the previous
        ids.append(ingest(conversation_id).id)
        clock.shift(3)
    # At 12 s: past the 10 s cap, so a new group, though only 3 s after the last.
    late = ingest(conversation_id)

    first, second = groups_of(conversation_id)
    assert set(first.messages.values_list("id", flat=True)) == set(ids)
    assert list(second.messages.values_list("id", flat=True)) == [late.id]


def test_without_max_wait_a_steady_stream_stays_one_group(clock: time_machine.Traveller) -> None:
    conversation_id = open_conversation()
    for _ in range(10):
        ingest(conversation_id)
        clock.shift(4)
    [group] = groups_of(conversation_id)
    assert group.messages.count() == 10


# --- G-2: the reply -------------------------------------------------------------


def test_reply_lists_ids_by_event_timestamp_then_arrival(clock: time_machine.Traveller) -> None:
    conversation_id = open_conversation()
    late_event = ingest(conversation_id, timestamp=EVENT_TIME + timedelta(seconds=30))
    clock.shift(1)
    early_event = ingest(conversation_id, timestamp=EVENT_TIME)
    clock.shift(1)
    same_time_later_arrival = ingest(conversation_id, timestamp=EVENT_TIME)
    clock.shift(5)
    reply_all_due()

    [reply] = replies_of(conversation_id)
    assert reply.content.split("\n") == [
        "Received messages:",
        str(early_event.id),
        str(same_time_later_arrival.id),
        str(late_event.id),
    ]


def test_reply_text_matches_seed_example_exactly(clock: time_machine.Traveller) -> None:
    conversation_id = open_conversation()
    ids = [
        "55ebb68a-a8ef-47d4-9a28-c97e0f0ec8f1",
        "8d41e347-da5f-4d03-8377-4378d86cfcf0",
        "1f9e918a-6d32-4a75-93a7-34b9e0faff22",
    ]
    for index, message_id in enumerate(ids):
        ingest(
            conversation_id,
            message_id=uuid.UUID(message_id),
            timestamp=EVENT_TIME + timedelta(seconds=index),
        )
        clock.shift(2)
    clock.shift(5)
    reply_all_due()

    [reply] = replies_of(conversation_id)
    assert reply.content == "Received messages:\n" + "\n".join(ids)


@override_settings(REPLY_LANGUAGE="pt-BR")
def test_pt_br_heading(clock: time_machine.Traveller) -> None:
    conversation_id = open_conversation()
    message = ingest(conversation_id)
    clock.shift(5)
    reply_all_due()
    assert replies_of(conversation_id)[0].content == f"Mensagens recebidas:\n{message.id}"


def shouting_writer(request: ReplyRequest) -> str:
    return " / ".join(m.content.upper() for m in request.messages)


@override_settings(REPLY_WRITER="parley.conversations.tests.test_services.shouting_writer")
def test_reply_writer_is_pluggable(clock: time_machine.Traveller) -> None:
    conversation_id = open_conversation()
    ingest(conversation_id, content="hello")
    clock.shift(1)
    ingest(conversation_id, content="there")
    clock.shift(5)
    reply_all_due()
    assert replies_of(conversation_id)[0].content == "HELLO / THERE"


# --- G-3: exactly once ----------------------------------------------------------


def test_a_task_run_twice_stores_one_reply(clock: time_machine.Traveller) -> None:
    conversation_id = open_conversation()
    ingest(conversation_id)
    [group] = groups_of(conversation_id)
    clock.shift(5)

    first = services.group_reply(group_id=group.pk)
    second = services.group_reply(group_id=group.pk)

    assert (first.outcome, second.outcome) == (ReplyOutcome.REPLIED, ReplyOutcome.DONE)
    assert len(replies_of(conversation_id)) == 1


def test_a_claimed_group_is_not_claimed_again_during_the_lease(
    clock: time_machine.Traveller,
) -> None:
    conversation_id = open_conversation()
    ingest(conversation_id)
    [group] = groups_of(conversation_id)
    clock.shift(5)
    assert reply_path._group_claim(group.pk).outcome is ReplyOutcome.REPLIED  # a runner claims
    clock.shift(1)

    assert services.group_reply(group_id=group.pk).outcome is ReplyOutcome.LEASED
    assert replies_of(conversation_id) == []


def test_a_runner_that_lost_its_lease_cannot_store_a_second_reply(
    clock: time_machine.Traveller, settings: object
) -> None:
    conversation_id = open_conversation()
    ingest(conversation_id)
    [group] = groups_of(conversation_id)
    clock.shift(5)
    reply_path._group_claim(group.pk)  # runner A claims, then stalls
    clock.shift(21)  # past the 20 s lease: runner B takes over and replies
    assert services.group_reply(group_id=group.pk).outcome is ReplyOutcome.REPLIED

    # Runner A wakes up and tries to record its reply.
    late = reply_path._group_record_reply(group.pk, "stale", size=1)

    assert late.outcome is ReplyOutcome.DONE
    [reply] = replies_of(conversation_id)
    assert reply.content != "stale"
    group.refresh_from_db()
    assert group.reply_attempts == 2


def test_message_arriving_after_the_claim_goes_to_a_new_group(
    clock: time_machine.Traveller,
) -> None:
    conversation_id = open_conversation()
    first = ingest(conversation_id)
    [group] = groups_of(conversation_id)
    clock.shift(5)
    reply_path._group_claim(group.pk)  # the reply is being written...
    second = ingest(conversation_id)  # ...when a message arrives exactly at the edge
    reply_path._group_record_reply(group.pk, f"Received messages:\n{first.id}", size=1)

    old, new = groups_of(conversation_id)
    assert list(new.messages.values_list("id", flat=True)) == [second.id]
    assert (old.status, new.status) == ("REPLIED", "OPEN")


def test_database_refuses_a_second_reply_to_the_same_group(clock: time_machine.Traveller) -> None:
    from django.db import IntegrityError, transaction

    conversation_id = open_conversation()
    ingest(conversation_id)
    [group] = groups_of(conversation_id)
    clock.shift(5)
    reply_all_due()

    with pytest.raises(IntegrityError), transaction.atomic():
        Message.objects.create(
            id=uuid.uuid4(),
            conversation_id=conversation_id,
            type="OUTBOUND",
            content="again",
            timestamp=T0,
            reply_to=group,
        )


# --- G-4: the sweeper -----------------------------------------------------------


def test_sweeper_answers_a_group_once_it_is_due(clock: time_machine.Traveller) -> None:
    conversation_id = open_conversation()
    ingest(conversation_id)
    clock.shift(4.9)
    assert services.due_work_sweep().groups_replied == 0  # still collecting
    clock.shift(0.1)

    report = services.due_work_sweep()

    assert report.groups_replied == 1
    assert len(replies_of(conversation_id)) == 1
    assert services.due_work_sweep().groups_replied == 0


@override_settings(SWEEP_BATCH_SIZE=2)
def test_sweeper_answers_more_groups_than_a_batch(clock: time_machine.Traveller) -> None:
    conversations = [open_conversation() for _ in range(5)]
    for conversation_id in conversations:
        ingest(conversation_id)
    clock.shift(5)

    assert services.due_work_sweep().groups_replied == 5
    assert all(len(replies_of(c)) == 1 for c in conversations)


def failing_writer(request: ReplyRequest) -> str:
    if request.messages[0].content == "boom":
        raise RuntimeError("the reply service is down")
    return "ok"


def test_sweeper_goes_on_past_a_group_whose_writer_fails(clock: time_machine.Traveller) -> None:
    first, second = open_conversation(), open_conversation()
    ingest(first, content="boom")
    ingest(second, content="fine")
    clock.shift(5)

    with override_settings(
        REPLY_WRITER="parley.conversations.tests.test_services.failing_writer",
        REPLY_RUNNER="sweep",  # a custom writer would fan out to runners (test_runners.py)
    ):
        assert services.due_work_sweep().groups_replied == 1
    assert (len(replies_of(first)), len(replies_of(second))) == (0, 1)
    # The failed group's lease ends; the next sweep after it tries again.
    clock.shift(20)
    assert services.due_work_sweep().groups_replied == 1
    assert len(replies_of(first)) == 1


@pytest.mark.parametrize("groups", [1, 8])
def test_on_postgresql_a_sweep_costs_the_same_round_trips_for_any_batch(
    groups: int, sql_path: str, clock: time_machine.Traveller, django_assert_num_queries: Any
) -> None:
    if sql_path != "database":
        pytest.skip("the portable sweep answers groups one by one")
    conversations = [open_conversation() for _ in range(groups)]
    for conversation_id in conversations:
        ingest(conversation_id)
    clock.shift(5)

    # Lock, expire orphans, claim, read the messages, record, unlock.
    with django_assert_num_queries(6):
        assert services.due_work_sweep().groups_replied == groups
    assert all(len(replies_of(c)) == 1 for c in conversations)


def test_sweeper_retries_a_group_whose_runner_died(clock: time_machine.Traveller) -> None:
    conversation_id = open_conversation()
    ingest(conversation_id)
    [group] = groups_of(conversation_id)
    clock.shift(5)
    reply_path._group_claim(group.pk)  # the runner dies without recording
    clock.shift(19.9)
    assert services.due_work_sweep().groups_replied == 0  # the lease still runs
    clock.shift(0.1)

    assert services.due_work_sweep().groups_replied == 1
    assert len(replies_of(conversation_id)) == 1


@pytest.mark.django_db(transaction=True)
def test_only_one_sweep_runs_at_a_time() -> None:
    from django.db import connections

    from parley.core.db import _SINGLETON_LOCK_CLASS, SWEEPER_LOCK_KEY, singleton_lock

    if connections["default"].vendor != "postgresql":
        pytest.skip("SQLite serialises writers itself")
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:  # another worker process, mid-sweep
            cursor.execute(
                "SELECT pg_advisory_lock(%s, %s)", [_SINGLETON_LOCK_CLASS, SWEEPER_LOCK_KEY]
            )
        assert services.due_work_sweep().ran is False
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock_all()")
        assert services.due_work_sweep().ran is True
        with singleton_lock(SWEEPER_LOCK_KEY) as acquired:
            assert acquired
    finally:
        other.close()


# --- Section 2: out-of-order messages --------------------------------------------


def test_message_for_an_unknown_conversation_is_buffered(clock: time_machine.Traveller) -> None:
    conversation_id = uuid.uuid4()
    result = ingest(conversation_id, content="early")

    assert result.status == "buffered"
    orphan = BufferedMessage.objects.get(pk=result.id)
    assert (orphan.status, orphan.conversation_id, orphan.received_at) == (
        "BUFFERED",
        conversation_id,
        T0,
    )
    assert not Message.objects.exists()


def test_orphan_is_adopted_when_its_conversation_arrives_in_time(
    clock: time_machine.Traveller,
) -> None:
    conversation_id = uuid.uuid4()
    orphan = ingest(conversation_id, content="early")
    clock.shift(5.9)

    services.conversation_open(conversation_id=conversation_id)

    message = Message.objects.get(pk=orphan.id)
    assert (message.type, message.conversation_id, message.received_at) == (
        "INBOUND",
        conversation_id,
        T0,
    )
    assert BufferedMessage.objects.get(pk=orphan.id).status == "ADOPTED"
    # Grouped on its own arrival: its window ended at 5 s, so it is due already.
    [group] = groups_of(conversation_id)
    assert group.reply_due_at == T0 + timedelta(seconds=5)
    assert services.group_reply(group_id=group.pk).outcome is ReplyOutcome.REPLIED


def test_orphan_expires_when_its_conversation_is_too_late(clock: time_machine.Traveller) -> None:
    conversation_id = uuid.uuid4()
    orphan = ingest(conversation_id, content="early")
    clock.shift(6.1)

    services.conversation_open(conversation_id=conversation_id)

    assert not Message.objects.filter(pk=orphan.id).exists()
    assert BufferedMessage.objects.get(pk=orphan.id).status == "EXPIRED"
    assert groups_of(conversation_id) == []
    with pytest.raises(BufferExpired):
        ingest(conversation_id, content="early", message_id=orphan.id)
    assert not Message.objects.filter(pk=orphan.id).exists()


def test_sweeper_expires_orphans_and_a_redelivery_is_refused(
    clock: time_machine.Traveller,
) -> None:
    conversation_id = uuid.uuid4()
    orphan = ingest(conversation_id, content="early")
    clock.shift(6.1)

    assert services.due_work_sweep().orphans_expired == 1
    assert BufferedMessage.objects.get(pk=orphan.id).status == "EXPIRED"
    with pytest.raises(BufferExpired):
        ingest(conversation_id, content="early", message_id=orphan.id)


def test_expired_id_stays_refused_after_its_conversation_opens(
    clock: time_machine.Traveller,
) -> None:
    """An expired id sent again after its conversation exists is still refused (B-3)."""
    conversation_id = uuid.uuid4()
    orphan = ingest(conversation_id, content="early")
    clock.shift(7)
    services.conversation_open(conversation_id=conversation_id)
    clock.shift(1)
    with pytest.raises(BufferExpired):
        ingest(conversation_id, content="early", message_id=orphan.id)
    assert Message.objects.filter(conversation_id=conversation_id).count() == 0


def test_orphans_far_apart_are_adopted_into_separate_groups(
    clock: time_machine.Traveller,
) -> None:
    conversation_id = uuid.uuid4()
    first = ingest(conversation_id, content="one")
    clock.shift(5.5)
    second = ingest(conversation_id, content="two")
    clock.shift(0.4)

    services.conversation_open(conversation_id=conversation_id)

    old, new = groups_of(conversation_id)
    assert list(old.messages.values_list("id", flat=True)) == [first.id]
    assert list(new.messages.values_list("id", flat=True)) == [second.id]
    assert old.status == "CLOSED"
    assert new.reply_due_at == T0 + timedelta(seconds=10.5)


def test_seed_timeline_adopts_abc_and_drops_dce(clock: time_machine.Traveller) -> None:
    """Seed 000 section 4: T=0 abc for 123, T=2 conv 123, T=7 dce for 456, T=15 conv 456."""
    conv_123, conv_456 = uuid.uuid4(), uuid.uuid4()
    abc = ingest(conv_123, content="abc")
    clock.shift(2)
    services.conversation_open(conversation_id=conv_123)
    clock.shift(5)
    dce = ingest(conv_456, content="dce")
    clock.shift(8)
    services.conversation_open(conversation_id=conv_456)
    clock.shift(10)
    reply_all_due()

    assert Message.objects.get(pk=abc.id).conversation_id == conv_123
    assert not Message.objects.filter(pk=dce.id).exists()
    assert [r.content for r in replies_of(conv_123)] == [f"Received messages:\n{abc.id}"]
    assert replies_of(conv_456) == []


# --- W-4 to W-6 at the service level ----------------------------------------------


def test_replay_stores_nothing_and_does_not_extend_the_window(
    clock: time_machine.Traveller,
) -> None:
    conversation_id = open_conversation()
    first = ingest(conversation_id, content="hi")
    clock.shift(3)

    again = ingest(conversation_id, content="hi", message_id=first.id)

    assert (again.replay, again.status) == (True, "queued")
    [group] = groups_of(conversation_id)
    assert group.reply_due_at == T0 + timedelta(seconds=5)
    assert Message.objects.count() == 1


def test_same_id_with_other_content_is_a_conflict(clock: time_machine.Traveller) -> None:
    conversation_id = open_conversation()
    first = ingest(conversation_id, content="hi")
    with pytest.raises(MessageIdConflict):
        ingest(conversation_id, content="changed", message_id=first.id)
    with pytest.raises(MessageIdConflict):
        ingest(uuid.uuid4(), content="hi", message_id=first.id)
    assert Message.objects.get().content == "hi"


def test_message_to_a_closed_conversation_is_refused(clock: time_machine.Traveller) -> None:
    conversation_id = open_conversation()
    services.conversation_close(conversation_id=conversation_id)
    with pytest.raises(ConversationClosed):
        ingest(conversation_id)
    assert not Message.objects.exists()
    assert not BufferedMessage.objects.exists()


def test_close_answers_a_pending_group_at_once(clock: time_machine.Traveller) -> None:
    conversation_id = open_conversation()
    message = ingest(conversation_id)
    clock.shift(1)

    conversation = services.conversation_close(conversation_id=conversation_id)

    assert (conversation.status, conversation.closed_at) == ("CLOSED", T0 + timedelta(seconds=1))
    [group] = groups_of(conversation_id)
    assert (group.status, group.reply_due_at) == ("CLOSED", T0 + timedelta(seconds=1))
    assert services.group_reply(group_id=group.pk).outcome is ReplyOutcome.REPLIED
    assert replies_of(conversation_id)[0].content == f"Received messages:\n{message.id}"


def test_open_twice_and_close_twice_are_refused(clock: time_machine.Traveller) -> None:
    conversation_id = open_conversation()
    with pytest.raises(ConversationExists):
        services.conversation_open(conversation_id=conversation_id)
    services.conversation_close(conversation_id=conversation_id)
    with pytest.raises(ConversationAlreadyClosed):
        services.conversation_close(conversation_id=conversation_id)
    with pytest.raises(ConversationNotFound):
        services.conversation_close(conversation_id=uuid.uuid4())
    assert Conversation.objects.count() == 1


def test_updated_at_moves_on_every_message_and_on_close(clock: time_machine.Traveller) -> None:
    conversation_id = open_conversation()
    clock.shift(1)
    ingest(conversation_id)
    assert Conversation.objects.get().updated_at == T0 + timedelta(seconds=1)
    clock.shift(1)
    services.conversation_close(conversation_id=conversation_id)
    conversation = Conversation.objects.get()
    assert (conversation.created_at, conversation.updated_at) == (T0, T0 + timedelta(seconds=2))


# --- Settings that would break the guarantees ---------------------------------------


@override_settings(CELERY_VISIBILITY_TIMEOUT=10)
def test_a_visibility_timeout_shorter_than_the_task_time_limit_fails_the_checks() -> None:
    assert "parley.E001" in {error.id for error in run_checks()}


@override_settings(REPLY_LEASE=timedelta(seconds=5))
def test_a_lease_shorter_than_the_task_limit_fails_the_checks() -> None:
    assert "parley.E002" in {error.id for error in run_checks()}


def test_default_settings_pass_the_checks() -> None:
    assert not [e for e in run_checks() if (e.id or "").startswith("parley.")]
