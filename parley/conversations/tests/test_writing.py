"""Calling a writer: its time limit, what counts as text, what a failure is called; the
backoff rule; and the settings checks of G-8."""

from __future__ import annotations

import signal
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.core.checks import run_checks
from django.test import override_settings

from parley.conversations import rules
from parley.conversations.replies import ReplyRequest, is_async_writer
from parley.conversations.tests import writers
from parley.conversations.writing import (
    AsyncWriterCalls,
    SyncWriterCalls,
    WriterResultError,
    WriterTimeout,
    _with_time_limit,
    checked,
    describe_error,
)

REQUEST = ReplyRequest(conversation_id=uuid.uuid4(), group_id=1, messages=[], language="en")


def test_a_plain_call_past_its_limit_is_interrupted() -> None:
    started = time.monotonic()
    with pytest.raises(WriterTimeout, match=r"timed out after 0\.2 s"):
        _with_time_limit(lambda: time.sleep(5), 0.2)
    assert time.monotonic() - started < 2


def test_an_alarm_set_before_the_call_keeps_its_deadline() -> None:
    fired: list[float] = []
    previous = signal.signal(signal.SIGALRM, lambda *_: fired.append(time.monotonic()))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.6)  # pytest-timeout's, say
        started = time.monotonic()
        assert _with_time_limit(lambda: "quick", 5) == "quick"
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 0.3 < remaining <= 0.6  # re-armed for what was left of it
        time.sleep(0.8)
        assert len(fired) == 1
        assert fired[0] - started == pytest.approx(0.6, abs=0.15)

        # An outer alarm due before the call's limit runs its own handler then.
        fired.clear()
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(WriterTimeout):
            _with_time_limit(lambda: time.sleep(2), 0.5)
        assert len(fired) == 1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_sync_calls_return_finished_futures() -> None:
    calls = SyncWriterCalls(writers.recording, timeout=1)
    assert calls.submit(REQUEST).result() == "Received messages:"
    failing = SyncWriterCalls(lambda request: 42, timeout=1)
    assert isinstance(failing.submit(REQUEST).exception(), WriterResultError)


def test_async_calls_run_at_most_their_capacity_and_time_out() -> None:
    writers.reset()
    calls = AsyncWriterCalls(writers.async_sleepy, timeout=1, capacity=3)
    futures = [calls.submit(REQUEST) for _ in range(7)]
    assert [f.result(timeout=10) for f in futures] == ["Received messages:"] * 7
    assert writers.most_at_once == 3

    slow = AsyncWriterCalls(writers.async_sleepy, timeout=0.05, capacity=1)
    assert isinstance(slow.submit(REQUEST).exception(timeout=10), WriterTimeout)


def test_async_writers_are_recognised() -> None:
    assert is_async_writer(writers.async_sleepy)
    assert is_async_writer(writers.async_callable)
    assert not is_async_writer(writers.recording)


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (None, "the writer returned NoneType, not text"),
        ("  \n", "the writer returned blank text"),
        ("a\x00b", "the writer's text contains a NUL character"),
    ],
)
def test_only_storable_text_is_a_reply(content: Any, error: str) -> None:
    with pytest.raises(WriterResultError, match=error):
        checked(content)
    assert checked("fine") == "fine"


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (WriterTimeout(10), "timed out after 10 s"),
        (RuntimeError(""), "RuntimeError"),
        (
            ConnectionError("GET https://bot:s3cret@api.example/v1/chat?api_key=abc#frag failed"),
            "ConnectionError: GET https://api.example/v1/chat failed",
        ),
        (
            ValueError('bad request: {"Authorization": "Bearer eyJhbGciOi.x.y", "x": 1}'),
            'ValueError: bad request: {"Authorization": "[redacted]", "x": 1}',
        ),
        (
            PermissionError("invalid key sk-proj-0123456789abcdef0123 for org 7"),
            "PermissionError: invalid key [redacted] for org 7",
        ),
        (
            KeyError("password=hunter2 token: abc"),
            "KeyError: 'password=[redacted] token: [redacted]'",
        ),
        (OSError("first line\nsecond line with a secret"), "OSError: first line"),
        (
            RuntimeError("401 for Bearer abc.def; the token expired"),
            "RuntimeError: 401 for Bearer [redacted]; the token expired",
        ),
    ],
)
def test_a_failure_is_described_in_one_short_line_without_secrets(
    exc: BaseException, text: str
) -> None:
    assert describe_error(exc) == text


def test_a_long_error_is_cut_and_a_uuid_is_kept() -> None:
    group = uuid.uuid4()
    assert str(group) in describe_error(RuntimeError(f"group {group} failed"))
    described = describe_error(RuntimeError("x " * 500))
    assert len(described) == 300
    assert described.endswith("…")


@pytest.mark.parametrize(
    ("attempt", "jitter", "seconds"),
    [(1, 0.0, 1), (1, 1.0, 2), (2, 1.0, 4), (3, 0.5, 6), (10, 1.0, 60)],
)
def test_the_backoff_doubles_with_jitter_up_to_its_cap(
    attempt: int, jitter: float, seconds: float
) -> None:
    delay = rules.reply_retry_delay(
        attempt=attempt,
        base=timedelta(seconds=2),
        cap=timedelta(seconds=60),
        jitter=jitter,
    )
    assert delay == timedelta(seconds=seconds)


def ids(**overrides: Any) -> set[str]:
    with override_settings(**overrides):
        return {e.id for e in run_checks() if e.id and e.id.startswith("parley.")}


def test_the_default_settings_pass_the_writer_checks() -> None:
    assert ids() == set()


def test_a_writer_timeout_too_close_to_the_lease_fails_the_checks() -> None:
    assert "parley.E004" in ids(REPLY_WRITER_TIMEOUT=timedelta(seconds=16))


def test_a_runner_longer_than_the_visibility_timeout_fails_the_checks() -> None:
    assert "parley.E005" in ids(REPLY_RUNNER_SECONDS=400.0)


def test_an_unknown_runner_mode_and_bad_numbers_fail_the_checks() -> None:
    assert "parley.E006" in ids(REPLY_RUNNER="threads")
    assert "parley.E007" in ids(REPLY_MAX_ATTEMPTS=0)
    assert "parley.E007" in ids(REPLY_RETRY_BACKOFF_MAX=timedelta(seconds=1))


def test_a_writer_that_cannot_be_imported_fails_the_checks() -> None:
    assert "parley.E008" in ids(REPLY_WRITER="parley.conversations.replies.no_such_writer")
    assert "parley.E008" in ids(REPLY_WRITER="parley.conversations.replies.HEADINGS")
