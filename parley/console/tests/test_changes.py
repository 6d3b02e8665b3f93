"""From outbox events to what they change: unknown and future types need only a mapping."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from parley.console import changes, registry
from parley.console.changes import Changes, changes_of
from parley.outbox.selectors import Event


def event(kind: str, subject: str = "", **data: object) -> Event:
    return Event(1, 0, kind, datetime.now(UTC), None, subject, dict(data))


@pytest.fixture
def stream_panel() -> Iterator[registry.Panel]:
    panel = registry.register_panel(
        registry.Panel(
            name="t-collectors",
            title="Collectors",
            template="x.html",
            query=list,
            watches=("stream.",),
        )
    )
    yield panel
    registry.unregister(panel.name)


def test_an_event_that_names_a_conversation_changes_it_whatever_its_type() -> None:
    found = changes_of(
        [
            event("message.received", "c1", conversation_id="c1", message_id="m"),
            event("assistance.requested", "req-9", conversation_id="c2"),  # a future type
            event("conversation.closed", "c3"),  # the subject is the conversation
            event("transcript.archived", "c4"),
            event("something.else", "x"),  # unknown: changes nothing
        ]
    )

    assert found.conversations == {"c1", "c2", "c3", "c4"}
    assert found.conversation("c2")
    assert not found.conversation("x")
    assert not found.everything


def test_a_panel_changes_with_the_types_it_watches(stream_panel: registry.Panel) -> None:
    assert changes_of([event("stream.delivered", "12345678")]).panels == {"t-collectors", "events"}
    assert changes_of([event("streamer.other", "1")]).panels == {"events"}  # "*" watches all


def test_merged_changes_keep_everything_and_too_many_become_everything() -> None:
    a = Changes(conversations=frozenset({"a"}), panels=frozenset({"p"}))
    b = Changes(conversations=frozenset({"b"}))

    assert (a | b) == Changes(conversations=frozenset({"a", "b"}), panels=frozenset({"p"}))
    assert not changes.NOTHING
    many = changes_of(event("x.y", conversation_id=str(n)) for n in range(changes.MAX_TRACKED + 1))
    assert many.everything
    assert many.conversation("anything")
    assert many.panel("any")
