"""Fixtures of the conversation tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import time_machine

from parley.conversations.tests.helpers import T0


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    """Server time frozen at T0; ``clock.shift(seconds)`` moves it."""
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller
