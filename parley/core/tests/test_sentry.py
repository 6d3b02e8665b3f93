"""Sentry is on when SENTRY_DSN is set, and only then (O-3).

Settings run once per process, so each case imports them in a fresh one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from django.conf import settings

PROBE = """
import json
import sentry_sdk
import config.settings
client = sentry_sdk.get_client()
print(json.dumps({
    "active": client.is_active(),
    "dsn": client.dsn,
    "environment": client.options.get("environment"),
    "send_default_pii": client.options.get("send_default_pii"),
}))
"""


def start_probe(**env: str) -> subprocess.Popen[str]:
    environment = {key: value for key, value in os.environ.items() if key != "SENTRY_DSN"}
    environment.update(PARLEY_ENV="development", **env)
    return subprocess.Popen(
        [sys.executable, "-c", PROBE],
        cwd=settings.BASE_DIR,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def result_of(probe: subprocess.Popen[str]) -> dict[str, Any]:
    stdout, stderr = probe.communicate(timeout=60)
    assert probe.returncode == 0, stderr
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return result


@pytest.fixture(scope="module")
def probes() -> dict[str, subprocess.Popen[str]]:
    """Both probes run side by side: each pays for a cold import of the settings."""
    return {
        "with_dsn": start_probe(SENTRY_DSN="https://public@sentry.invalid/1"),
        "without_dsn": start_probe(),
    }


def test_a_dsn_turns_sentry_on(probes: dict[str, subprocess.Popen[str]]) -> None:
    assert result_of(probes["with_dsn"]) == {
        "active": True,
        "dsn": "https://public@sentry.invalid/1",
        "environment": "development",
        "send_default_pii": False,
    }


def test_without_a_dsn_sentry_stays_off(probes: dict[str, subprocess.Popen[str]]) -> None:
    result = result_of(probes["without_dsn"])
    assert result["active"] is False
    assert result["dsn"] is None
