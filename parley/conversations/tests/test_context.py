"""What a writer gets (G-7, G-8): the group's messages and, bounded, the conversation before it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
import time_machine
from django.test import override_settings
from django.utils import timezone

from parley.conversations import services
from parley.conversations.models import Message
from parley.conversations.replies import ReplyRequest
from parley.conversations.services import replies as reply_path
from parley.conversations.services.context import reply_requests
from parley.conversations.tests import writers
from parley.conversations.tests.helpers import (
    EVENT_TIME,
    groups_of,
    ingest,
    open_conversation,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sql_path")]


@pytest.fixture(autouse=True)
def _recording() -> Iterator[None]:
    writers.reset()
    with override_settings(REPLY_WRITER="parley.conversations.tests.writers.recording"):
        yield


def request_for(group_id: int) -> ReplyRequest:
    [request] = [r for r in writers.received if r.group_id == group_id]
    return request


def test_the_writer_gets_earlier_messages_and_replies_oldest_first_but_no_later_ones(
    clock: time_machine.Traveller,
) -> None:
    conversation_id = open_conversation()
    ingest(conversation_id, "first")
    clock.shift(1)
    ingest(conversation_id, "second")
    clock.shift(5)
    services.replies_run(budget=30)  # the first group's reply
    clock.shift(1)
    ingest(conversation_id, "third")
    clock.shift(5)
    # The second group is claimed (its writer is about to run) when a fourth message arrives.
    second_claim = reply_path._group_claim(groups_of(conversation_id)[1].pk)
    assert second_claim.claimed is not None
    ingest(conversation_id, "fourth")  # a third group, later than the one being answered
    [request] = reply_requests([second_claim.claimed])

    assert [m.content for m in request.messages] == ["third"]
    first_reply = Message.objects.get(reply_to=groups_of(conversation_id)[0])
    assert [(m.type, m.content) for m in request.history] == [
        ("INBOUND", "first"),
        ("INBOUND", "second"),
        ("OUTBOUND", first_reply.content),
    ]
    assert [m.id for m in request.history][-1] == first_reply.pk


@override_settings(REPLY_CONTEXT_MESSAGES=2)
def test_the_history_is_the_latest_messages_up_to_the_setting(
    clock: time_machine.Traveller,
) -> None:
    conversation_id = open_conversation()
    for content in ["a", "b", "c"]:  # each its own group, answered before the next message
        ingest(conversation_id, content, timestamp=timezone.now())
        clock.shift(6)
        services.replies_run(budget=30)
        clock.shift(1)

    last = groups_of(conversation_id)[-1]
    # Before c: a, its reply, b, its reply; the latest two of them.
    history = request_for(last.pk).history
    assert [m.type for m in history] == ["INBOUND", "OUTBOUND"]
    assert history[0].content == "b"
    assert history[1].content == Message.objects.get(reply_to=groups_of(conversation_id)[1]).content


@override_settings(REPLY_CONTEXT_MESSAGES=0)
def test_no_history_when_the_setting_is_zero(clock: time_machine.Traveller) -> None:
    conversation_id = open_conversation()
    ingest(conversation_id, "a")
    clock.shift(6)
    ingest(conversation_id, "b")
    clock.shift(6)
    services.replies_run(budget=30)

    assert request_for(groups_of(conversation_id)[-1].pk).history == []


def test_an_agents_message_is_history_and_order_follows_the_event_timestamps(
    clock: time_machine.Traveller,
) -> None:
    conversation_id = open_conversation()
    ingest(conversation_id, "question")
    clock.shift(6)
    services.replies_run(budget=30)
    agent = Message.objects.create(  # an agent wrote in the conversation (Q-2's message.sent)
        id=uuid.uuid4(),
        conversation_id=conversation_id,
        type="OUTBOUND",
        content="an agent here",
        timestamp=EVENT_TIME - timedelta(days=1),  # older than every other event
    )
    ingest(conversation_id, "thanks")
    clock.shift(6)
    writers.reset()
    services.replies_run(budget=30)

    [request] = writers.received
    first, second, *_ = [m.content for m in request.history]
    assert (first, second) == (agent.content, "question")


def test_a_writer_that_wants_no_history_gets_none(
    clock: time_machine.Traveller, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writers.recording, "wants_history", False, raising=False)
    conversation_id = open_conversation()
    ingest(conversation_id, "a")
    clock.shift(6)
    ingest(conversation_id, "b")
    clock.shift(6)
    with override_settings(REPLY_RUNNER="sweep"):
        assert services.due_work_sweep().groups_replied == 2

    assert request_for(groups_of(conversation_id)[-1].pk).history == []


@override_settings(REPLY_RUNNER="sweep")
def test_the_sweep_gives_a_writer_the_same_history(clock: time_machine.Traveller) -> None:
    conversation_id = open_conversation()
    ingest(conversation_id, "a")
    clock.shift(6)
    services.due_work_sweep()
    clock.shift(1)
    ingest(conversation_id, "b")
    clock.shift(6)
    services.due_work_sweep()

    history = request_for(groups_of(conversation_id)[-1].pk).history
    assert [m.type for m in history] == ["INBOUND", "OUTBOUND"]
    assert history[0].content == "a"
