"""The retry rules (A-7), the Retry-After parser and the redactor (A-9), as pure functions."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest

from parley.assistance.channels import mask_value
from parley.assistance.channels._http import retry_after_seconds
from parley.assistance.redaction import MAX_ERROR_LENGTH, redact
from parley.assistance.rules import RETRY_AFTER_CAP_SECONDS, retry_delay

SCHEDULE = [0, 5, 30, 120, 600, 1800, 3600, 7200]


def delay(
    attempts: int, retry_after: float | None = None, jitter: float = 0.0, **kw: int
) -> float | None:
    return retry_delay(
        attempts=attempts,
        max_attempts=kw.get("max_attempts", len(SCHEDULE)),
        schedule=SCHEDULE,
        retry_after=retry_after,
        jitter=jitter,
        rng=random.Random(7),
    )


@pytest.mark.parametrize(("attempts", "expected"), [(1, 5), (2, 30), (3, 120), (7, 7200)])
def test_each_failed_attempt_waits_its_place_in_the_schedule(
    attempts: int, expected: float
) -> None:
    assert delay(attempts) == expected


def test_the_attempts_run_out_with_the_schedule() -> None:
    assert delay(8) is None


def test_jitter_stays_within_its_share() -> None:
    waits = [
        retry_delay(
            attempts=2,
            max_attempts=8,
            schedule=SCHEDULE,
            retry_after=None,
            jitter=0.2,
            rng=random.Random(seed),
        )
        for seed in range(200)
    ]
    assert all(24 <= w <= 36 for w in waits)  # type: ignore[operator]
    assert len({round(w, 3) for w in waits}) > 100  # type: ignore[arg-type]


def test_retry_after_wins_when_it_is_longer() -> None:
    assert delay(1, retry_after=20) == 20
    assert delay(2, retry_after=3) == 30


def test_retry_after_is_capped_at_the_schedule_plus_two_hours() -> None:
    assert delay(1, retry_after=10 * 3600) == 5 + RETRY_AFTER_CAP_SECONDS


def test_an_operator_retry_starts_the_schedule_over() -> None:
    # 8 attempts failed, the operator retried: max_attempts is 16 now.
    assert delay(8, max_attempts=16) == 0
    assert delay(9, max_attempts=16) == 5
    assert delay(16, max_attempts=16) is None


def test_retry_after_in_seconds_and_as_an_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("120", now=now) == 120
    assert retry_after_seconds("Thu, 01 Jan 2026 12:00:30 GMT", now=now) == 30
    assert retry_after_seconds("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0
    assert retry_after_seconds("soon", now=now) is None
    assert retry_after_seconds("", now=now) is None
    assert retry_after_seconds("-5", now=now) is None


def test_redact_removes_urls_and_secrets_whole_or_encoded() -> None:
    secret = "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"
    text = (
        "Max retries exceeded with url: https://hooks.slack.com/services/T0/B0/XyZ123 "
        f"(secret {secret}, encoded whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0 and "
        "tgram://123456:ABCDEF/987)"
    )
    cleaned = redact(text, [secret])
    assert "hooks.slack.com" not in cleaned
    assert "XyZ123" not in cleaned
    assert secret not in cleaned
    assert "ABCDEF" not in cleaned
    assert cleaned.startswith("Max retries exceeded with url: https://[redacted]")
    assert len(redact("x" * 5000)) == MAX_ERROR_LENGTH


def test_mask_keeps_the_host_and_the_last_four_characters() -> None:
    assert (
        mask_value("https://hooks.slack.com/services/T0/B0/XyZ123")
        == "https://hooks.slack.com/…Z123"
    )
    assert "123456" not in mask_value("tgram://123456:ABCDEF/987654")
    assert mask_value("short") == "…"


def test_the_system_checks_refuse_a_short_lease_and_a_bad_reply_secret(settings: Any) -> None:
    from datetime import timedelta

    from parley.assistance.checks import assistance_settings

    assert assistance_settings() == []
    settings.ASSISTANCE_LEASE = timedelta(seconds=10)
    settings.REPLY_WEBHOOK_SECRET = "plain"
    assert [error.id for error in assistance_settings()] == [
        "parley.assistance.E001",
        "parley.assistance.E002",
    ]
