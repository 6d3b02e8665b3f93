"""A writer that fails (G-8): backoff, FAILED with a short reason, the operator's retry,
and a conversation that is never stuck behind a FAILED group."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from parley.conversations import events, services
from parley.conversations.audit import exactly_once_audit
from parley.conversations.models import Conversation, MessageGroup
from parley.conversations.services import ReplyOutcome
from parley.conversations.services import replies as reply_path
from parley.conversations.tests import writers
from parley.conversations.tests.helpers import (
    T0,
    groups_of,
    ingest,
    open_conversation,
    replies_of,
)
from parley.core.errors import GroupNotFailed, GroupNotFound
from parley.outbox.models import OutboxEvent

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sql_path")]

SCRIPTED = "parley.conversations.tests.writers.scripted"
# Three attempts; 2 s, then 4 s between them (plus jitter: half to all of it).
FAILING = {
    "REPLY_WRITER": SCRIPTED,
    "REPLY_MAX_ATTEMPTS": 3,
    "REPLY_RETRY_BACKOFF": timedelta(seconds=2),
    "REPLY_RETRY_BACKOFF_MAX": timedelta(seconds=60),
}


@pytest.fixture(autouse=True)
def _settings() -> Iterator[None]:
    writers.reset()
    with override_settings(**FAILING):
        yield


def due_group(clock: time_machine.Traveller, content: str) -> tuple[uuid.UUID, MessageGroup]:
    conversation_id = open_conversation()
    ingest(conversation_id, content)
    clock.shift(5)
    [group] = groups_of(conversation_id)
    return conversation_id, group


def run_until_settled(clock: time_machine.Traveller, runs: int = 6) -> None:
    """Runners, with the clock moved past every backoff in between."""
    for _ in range(runs):
        services.replies_run(budget=30)
        clock.shift(30)


def test_a_failed_attempt_makes_the_group_due_again_after_a_backoff(
    clock: time_machine.Traveller,
) -> None:
    conversation_id, group = due_group(clock, "boom")

    report = services.replies_run(budget=30)

    assert (report.replied, report.failed_attempts) == (0, 1)
    group.refresh_from_db()
    assert (group.status, group.reply_attempts, group.failed_at) == ("CLOSED", 1, None)
    assert group.reply_due_at is not None
    # First backoff: between half and all of REPLY_RETRY_BACKOFF.
    assert T0 + timedelta(seconds=6) <= group.reply_due_at <= T0 + timedelta(seconds=7)
    assert replies_of(conversation_id) == []
    # Not before the backoff ends.
    clock.shift(0.9)
    assert services.replies_run(budget=30).failed_attempts == 0
    clock.shift(1.1)
    assert services.replies_run(budget=30).failed_attempts == 1


def test_the_stored_error_is_short_and_keeps_secrets_out(clock: time_machine.Traveller) -> None:
    _, group = due_group(clock, "boom")

    services.replies_run(budget=30)

    group.refresh_from_db()
    assert group.last_error == "RuntimeError: backend said 500 for https://llm.example/v1"
    assert "hunter2" not in group.last_error
    assert "sk-" not in group.last_error


def test_after_the_last_attempt_the_group_is_failed_with_its_reason(
    clock: time_machine.Traveller,
) -> None:
    conversation_id, group = due_group(clock, "boom")

    run_until_settled(clock)

    group.refresh_from_db()
    assert (group.status, group.reply_attempts, group.reply_due_at) == ("FAILED", 3, None)
    assert group.failed_at is not None
    assert group.last_error is not None
    assert group.last_error.startswith("RuntimeError: ")
    assert len([r for r in writers.received if r.group_id == group.pk]) == 3
    assert [r.attempt for r in writers.received] == [1, 2, 3]
    assert replies_of(conversation_id) == []
    audit = exactly_once_audit(conversation_ids=[conversation_id])
    assert (audit.failed_groups, audit.failed_messages, audit.lost, audit.duplicated) == (
        1,
        1,
        0,
        0,
    )


def test_a_writer_that_fails_twice_then_succeeds_gives_one_reply(
    clock: time_machine.Traveller,
) -> None:
    conversation_id, group = due_group(clock, "flaky")

    run_until_settled(clock)

    [reply] = replies_of(conversation_id)
    group.refresh_from_db()
    assert (group.status, group.reply_attempts) == ("REPLIED", 3)
    # The last failure stays on record, for the operator.
    assert group.last_error == "ConnectionError: connection reset by peer"
    assert reply.content.startswith("Received messages:\n")


@pytest.mark.parametrize(
    ("content", "writer", "error"),
    [
        ("none", SCRIPTED, "WriterResultError: the writer returned blank text"),
        ("slow", SCRIPTED, "timed out after 0.2 s"),
        ("slow", "parley.conversations.tests.writers.async_sleepy", "timed out after 0.2 s"),
    ],
)
def test_no_text_and_a_call_past_its_time_limit_are_failures(
    clock: time_machine.Traveller, content: str, writer: str, error: str
) -> None:
    _, group = due_group(clock, content)

    with override_settings(REPLY_WRITER=writer, REPLY_WRITER_TIMEOUT=timedelta(seconds=0.2)):
        assert services.replies_run(budget=30).failed_attempts == 1

    group.refresh_from_db()
    assert (group.status, group.last_error) == ("CLOSED", error)


def test_a_failing_group_does_not_hold_up_the_others(clock: time_machine.Traveller) -> None:
    due_group(clock, "boom")
    others = [open_conversation() for _ in range(3)]
    for conversation_id in others:
        ingest(conversation_id)
    clock.shift(5)

    report = services.replies_run(budget=30)

    assert (report.replied, report.failed_attempts) == (3, 1)
    assert all(len(replies_of(c)) == 1 for c in others)


def test_the_sweep_records_failures_the_same_way(clock: time_machine.Traveller) -> None:
    conversation_id, group = due_group(clock, "boom")

    with override_settings(REPLY_RUNNER="sweep"):
        for _ in range(4):
            services.due_work_sweep()
            clock.shift(30)

    group.refresh_from_db()
    assert (group.status, group.reply_attempts) == ("FAILED", 3)
    assert replies_of(conversation_id) == []


def test_the_close_task_records_failures_the_same_way(clock: time_machine.Traveller) -> None:
    conversation_id = open_conversation()
    ingest(conversation_id, "boom")
    services.conversation_close(conversation_id=conversation_id)
    [group] = groups_of(conversation_id)

    result = services.group_reply(group_id=group.pk)

    assert result.outcome is ReplyOutcome.RETRY
    assert result.due_at is not None
    assert result.due_at > T0
    group.refresh_from_db()
    assert (group.status, group.reply_attempts) == ("CLOSED", 1)


def test_a_group_whose_runners_keep_dying_ends_failed(clock: time_machine.Traveller) -> None:
    _, group = due_group(clock, "hi")
    for _ in range(3):  # three runners claim it and die before they record anything
        assert reply_path._group_claim(group.pk).claimed is not None
        clock.shift(21)  # past the lease

    assert services.replies_run(budget=30).replied == 0

    group.refresh_from_db()
    assert (group.status, group.reply_attempts) == ("FAILED", 4)
    assert group.last_error == (
        "attempt 3 ended without a result (its runner stopped: a crash, a kill or a time limit)"
    )
    assert writers.received == []  # given up without a fourth call


def test_a_late_failure_does_not_override_the_runner_that_took_over(
    clock: time_machine.Traveller,
) -> None:
    _, group = due_group(clock, "hi")
    first = reply_path._group_claim(group.pk).claimed
    assert first is not None
    clock.shift(21)  # the first runner stalls past its lease; a second one answers
    assert services.replies_run(budget=30).replied == 1

    from parley.conversations.services.failures import group_reply_failed

    late = group_reply_failed(first, error="RuntimeError: too late")

    assert late.outcome is ReplyOutcome.DONE
    group.refresh_from_db()
    assert (group.status, group.last_error) == ("REPLIED", None)


# --- The conversation goes on ----------------------------------------------------


def failed_group(clock: time_machine.Traveller) -> tuple[uuid.UUID, MessageGroup]:
    conversation_id, group = due_group(clock, "boom")
    run_until_settled(clock)
    group.refresh_from_db()
    assert group.status == "FAILED"
    return conversation_id, group


def test_a_message_after_a_failed_group_starts_a_group_that_is_answered(
    clock: time_machine.Traveller,
) -> None:
    conversation_id, failed = failed_group(clock)
    writers.reset()

    later = ingest(conversation_id, "still there?")
    clock.shift(5)
    assert services.replies_run(budget=30).replied == 1

    _, group = groups_of(conversation_id)
    assert (group.status, list(group.messages.values_list("id", flat=True))) == (
        "REPLIED",
        [later],
    )
    # Its writer sees the failed group's message as history.
    [request] = writers.received
    assert [m.content for m in request.history] == ["boom"]
    failed.refresh_from_db()
    assert failed.status == "FAILED"


def test_a_close_while_a_group_is_failed_closes_and_leaves_the_group_to_an_operator(
    clock: time_machine.Traveller,
) -> None:
    conversation_id, failed = failed_group(clock)

    conversation = services.conversation_close(conversation_id=conversation_id)

    assert conversation.status == "CLOSED"
    failed.refresh_from_db()
    assert (failed.status, failed.reply_due_at) == ("FAILED", None)
    assert services.replies_run(budget=30).replied == 0

    # Retried after the close, it is answered in the closed conversation (G-5's promise).
    with override_settings(REPLY_WRITER="parley.conversations.replies.list_message_ids"):
        services.group_retry(group_id=failed.pk)
        assert services.due_work_sweep().groups_replied == 1
    assert len(replies_of(conversation_id)) == 1
    audit = exactly_once_audit(conversation_ids=[conversation_id])
    assert (audit.failed_groups, audit.lost, audit.duplicated) == (0, 0, 0)


# --- The operator's retry ----------------------------------------------------------


def test_a_retry_makes_a_failed_group_due_now_with_fresh_attempts(
    clock: time_machine.Traveller,
) -> None:
    _, failed = failed_group(clock)

    group = services.group_retry(group_id=failed.pk)

    assert (group.status, group.reply_due_at, group.reply_attempts, group.failed_at) == (
        "CLOSED",
        T0 + timedelta(seconds=5 + 6 * 30),
        0,
        None,
    )
    assert group.last_error is not None  # kept until a later attempt replaces it
    writers.reset()
    run_until_settled(clock)  # the writer still fails: three more attempts, FAILED again
    group.refresh_from_db()
    assert (group.status, group.reply_attempts) == ("FAILED", 3)
    assert len(writers.received) == 3


def test_only_a_failed_group_can_be_retried(clock: time_machine.Traveller) -> None:
    conversation_id = open_conversation()
    ingest(conversation_id)
    [group] = groups_of(conversation_id)

    with pytest.raises(GroupNotFailed):
        services.group_retry(group_id=group.pk)
    with pytest.raises(GroupNotFound):
        services.group_retry(group_id=2**40)
    group.refresh_from_db()
    assert group.status == "OPEN"


def test_retry_replies_command_takes_ids_or_every_failed_group(
    clock: time_machine.Traveller,
) -> None:
    _, first = failed_group(clock)
    _, second = failed_group(clock)
    out = io.StringIO()

    call_command("retry_replies", str(first.pk), stdout=out)
    assert f"group {first.pk} of conversation {first.conversation_id}: due again" in out.getvalue()
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == ("CLOSED", "FAILED")

    call_command("retry_replies", "--all-failed", stdout=io.StringIO())
    second.refresh_from_db()
    assert second.status == "CLOSED"

    err = io.StringIO()
    with pytest.raises(CommandError, match="1 group"):
        call_command("retry_replies", str(first.pk), stdout=io.StringIO(), stderr=err)
    assert "is CLOSED; only a FAILED group can be retried" in err.getvalue()
    with pytest.raises(CommandError, match="--all-failed"):
        call_command("retry_replies", stdout=io.StringIO())


def test_audit_replies_lists_failed_groups_and_does_not_count_them_lost(
    clock: time_machine.Traveller,
) -> None:
    _, failed = failed_group(clock)
    out = io.StringIO()

    call_command("audit_replies", stdout=out)

    text = out.getvalue()
    assert '"failed_groups": 1' in text
    assert '"lost": 0' in text
    assert f"group {failed.pk} of conversation {failed.conversation_id}" in text
    assert "after 3 attempts: RuntimeError: backend said 500" in text


# --- Visible to the operator: outbox events, /metrics, admin -------------------------


def test_failed_and_retried_are_outbox_events(clock: time_machine.Traveller) -> None:
    conversation_id, failed = failed_group(clock)
    services.group_retry(group_id=failed.pk)

    mine = list(
        OutboxEvent.objects.filter(
            type__in=[events.REPLY_FAILED, events.REPLY_RETRIED], subject=str(conversation_id)
        ).order_by("id")
    )

    tenant_id = Conversation.objects.get(pk=conversation_id).tenant_id
    assert [(e.type, e.subject, e.tenant_id) for e in mine] == [
        (events.REPLY_FAILED, str(conversation_id), tenant_id),
        (events.REPLY_RETRIED, str(conversation_id), tenant_id),
    ]
    assert mine[0].data == {
        "conversation_id": str(conversation_id),
        "group_id": failed.pk,
        "attempts": 3,
        "error": failed.last_error,
    }
    assert mine[1].data == {"conversation_id": str(conversation_id), "group_id": failed.pk}


def test_metrics_show_failed_groups_and_writer_calls(
    clock: time_machine.Traveller, client: Any
) -> None:
    failed_group(clock)

    body = client.get("/metrics").content.decode()

    assert "parley_groups_failed 1.0" in body
    assert 'parley_reply_writer_calls_total{result="error"}' in body
    assert "parley_reply_writers_active" in body


def test_the_admin_retries_failed_groups_and_shows_why_they_failed(
    clock: time_machine.Traveller, admin_client: Any
) -> None:
    _, failed = failed_group(clock)
    url = "/admin/conversations/messagegroup/"

    listing = admin_client.get(url, {"status__exact": "FAILED"})
    assert listing.status_code == 200
    assert "RuntimeError: backend said 500" in listing.content.decode()

    response = admin_client.post(
        url, {"action": "retry_replies", "_selected_action": [failed.pk]}, follow=True
    )

    assert response.status_code == 200
    assert f"1 group(s) sent back to the writer: {failed.pk}." in response.content.decode()
    failed.refresh_from_db()
    assert failed.status == "CLOSED"
    refused = admin_client.post(
        url, {"action": "retry_replies", "_selected_action": [failed.pk]}, follow=True
    )
    assert "only a FAILED group can be retried" in refused.content.decode()
