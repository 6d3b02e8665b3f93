"""The ``live`` fixture: the live process's application, with short poll times (0.6 s)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from parley.live.tests.client import LiveClient, live_application

__all__ = ["LiveClient", "live", "live_application"]


@pytest.fixture
def live(settings: Any) -> Iterator[LiveClient]:
    with live_application(settings) as client:
        settings.PIX_POLL_SECONDS = 0.6
        settings.REPLY_STREAM_POLL_SECONDS = 0.6
        yield client
