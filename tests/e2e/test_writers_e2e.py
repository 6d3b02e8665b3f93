"""G-8 end to end: a writer that takes a second, sync (sleeps) or async (awaits), with real
gunicorn, four Celery worker processes and beat. Replies fan out across the processes
(and, for the async writer, many at a time in each), stay on time, survive failures and
a SIGKILLed worker, and every group ends with exactly one reply or FAILED."""

from __future__ import annotations

import shutil
import signal
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from bench.writers import overlap
from parley.conversations.models import Message, MessageGroup
from tests.e2e.conftest import Stack, _start_stack, _stop_all
from tests.payloads import new_conversation, new_message

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WINDOW = 2.0  # long enough that a burst of posts falls due together
PROCESSES = 4
ASYNC_CONCURRENCY = 25  # per process
WRITER_SECONDS = 1.0
LEASE = 8.0
WRITERS = {"sync": "tests.e2e.writers.sleep_1s", "async": "tests.e2e.writers.await_1s"}


@pytest.fixture(scope="module", params=["sync", "async"])
def stack(
    request: pytest.FixtureRequest,
    django_db_setup: Any,
    django_db_blocker: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """One stack per kind of writer, stopped before the next one starts."""
    log = tmp_path_factory.mktemp("writer-log")
    failures_before = request.session.testsfailed
    with django_db_blocker.unblock():
        stack = _start_stack(
            tmp_path_factory,
            window=WINDOW,
            tolerance=3.0,
            REPLY_WRITER=WRITERS[request.param],
            WORKER_CONCURRENCY=str(PROCESSES),
            REPLY_ASYNC_CONCURRENCY=str(ASYNC_CONCURRENCY),
            REPLY_MAX_ATTEMPTS="3",
            REPLY_RETRY_BACKOFF_SECONDS="0.3",
            REPLY_LEASE_SECONDS=str(LEASE),
            REPLY_WRITER_TIMEOUT_SECONDS="3",
            BENCH_WRITER_LOG=str(log),
        )
        stack.kind = request.param  # type: ignore[attr-defined]
        try:
            yield stack
        finally:
            _stop_all([stack], show_logs=request.session.testsfailed > failures_before)
            call_command("flush", interactive=False, verbosity=0)


@pytest.fixture
def writer_log(stack: Stack) -> Path:
    """The writer's call log, emptied for this test."""
    folder = Path(stack.env["BENCH_WRITER_LOG"])
    shutil.rmtree(folder)
    folder.mkdir()
    return folder


def concurrency(stack: Stack) -> int:
    return PROCESSES * (ASYNC_CONCURRENCY if stack.kind == "async" else 1)  # type: ignore[attr-defined]


def start_conversations(stack: Stack, cues: list[str]) -> list[uuid.UUID]:
    """One conversation per cue, each with one message whose content is the cue."""

    def start(cue: str) -> uuid.UUID:
        conversation_id = uuid.uuid4()
        assert stack.post(new_conversation(conversation_id)).status == 201
        assert stack.post(new_message(uuid.uuid4(), conversation_id, cue)).status == 202
        return conversation_id

    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(start, cues))


def delays(conversation_ids: list[uuid.UUID]) -> list[float]:
    return [
        (g.replied_at - g.last_message_at).total_seconds()
        for g in MessageGroup.objects.filter(conversation_id__in=conversation_ids, status="REPLIED")
        if g.replied_at is not None
    ]


def test_a_hundred_groups_due_at_once_are_answered_within_window_plus_their_share_of_the_writers(
    stack: Stack, writer_log: Path
) -> None:
    conversation_ids = start_conversations(stack, ["hello"] * 100)
    bound = WINDOW + WRITER_SECONDS + 100 / concurrency(stack)

    audit = stack.settle(timeout=bound + 30, conversation_ids=conversation_ids)

    assert (audit.groups, audit.replies, audit.lost, audit.duplicated) == (100, 100, 0, 0), audit
    answered = delays(conversation_ids)
    assert len(answered) == 100
    assert min(answered) >= WINDOW
    assert max(answered) <= bound, (sorted(answered)[-5:], bound)
    # Each group's writer ran once: a lease starts when its call starts, so no
    # group waited out a lease in a queue and was claimed twice.
    attempts = MessageGroup.objects.filter(conversation_id__in=conversation_ids).values_list(
        "reply_attempts", flat=True
    )
    assert set(attempts) == {1}
    calls, most, processes = overlap(writer_log)
    assert calls == 100
    assert processes == PROCESSES  # fanned out across every worker process
    if stack.kind == "sync":  # type: ignore[attr-defined]
        assert most == PROCESSES
    else:  # many at a time in each process
        assert ASYNC_CONCURRENCY < most <= concurrency(stack)


def test_failing_writers_are_retried_or_failed_and_never_delay_the_others(
    stack: Stack, writer_log: Path
) -> None:
    # As many others as the writers can take at once beside the two failing groups.
    others_count = min(8, concurrency(stack) - 2)
    cues = ["always-fails", "fails-twice", *["hello"] * others_count]
    doomed, flaky, *others = start_conversations(stack, cues)

    audit = stack.settle(timeout=WINDOW + 30, conversation_ids=[doomed, flaky, *others])

    assert (audit.lost, audit.duplicated, audit.failed_groups) == (0, 0, 1), audit
    # The others, on time: window + writer + 1 s.
    answered = delays(others)
    assert len(answered) == others_count
    assert max(answered) <= WINDOW + WRITER_SECONDS + 1, answered
    # Failed twice, then one reply.
    [flaky_group] = MessageGroup.objects.filter(conversation_id=flaky)
    assert (flaky_group.status, flaky_group.reply_attempts) == ("REPLIED", 3)
    assert Message.objects.filter(conversation_id=flaky, type="OUTBOUND").count() == 1
    # Always failing: FAILED after REPLY_MAX_ATTEMPTS, with its reason.
    [doomed_group] = MessageGroup.objects.filter(conversation_id=doomed)
    assert (doomed_group.status, doomed_group.reply_attempts, doomed_group.reply_due_at) == (
        "FAILED",
        3,
        None,
    )
    assert doomed_group.last_error == "RuntimeError: the bot backend is down"
    assert not Message.objects.filter(conversation_id=doomed, type="OUTBOUND").exists()


def test_a_worker_killed_mid_write_answers_the_group_once_after_its_lease(
    stack: Stack, writer_log: Path
) -> None:
    [conversation_id] = start_conversations(stack, ["slow"])
    deadline = time.monotonic() + WINDOW + 10
    while True:  # until a runner has claimed the group: its writer is now running
        group = MessageGroup.objects.get(conversation_id=conversation_id)
        if group.status == "CLOSED" and group.reply_attempts == 1:
            break
        assert time.monotonic() < deadline, stack.logs()
        time.sleep(0.05)
    lease_end = group.reply_due_at
    stack.kill("worker", signal.SIGKILL)
    assert Message.objects.filter(conversation_id=conversation_id, type="OUTBOUND").count() == 0

    stack.start_worker()
    audit = stack.settle(timeout=LEASE + 30, conversation_ids=[conversation_id])

    assert (audit.replies, audit.lost, audit.duplicated) == (1, 0, 0), audit
    group.refresh_from_db()
    assert group.status == "REPLIED"
    assert group.replied_at is not None
    assert lease_end is not None
    assert group.replied_at >= lease_end
    assert group.reply_attempts == 2
