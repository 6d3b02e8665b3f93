"""From outbox events to what they change on a console page.

The console never applies an event to the page itself: an event only says
"this conversation changed" or "this panel changed", and the page's
fragments are rendered again from the database. So an event that arrives
twice (the page's own position overlaps the stream's) changes nothing, a
missed one is made good by any later rendering, and a new event type needs
no code here:

* an event whose ``data`` names a ``conversation_id``, or whose type is one
  of :data:`CONVERSATION_TYPES` (its ``subject`` is then the conversation),
  changes that conversation;
* a panel changes with the types it ``watches`` (``parley.console.registry``).

Everything else only moves the stream's position.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from parley.console import registry
from parley.outbox.selectors import Event

# Prefixes of event types whose subject is a conversation id.
CONVERSATION_TYPES = ("conversation.", "message.", "reply.", "group.", "survey.", "transcript.")
# More changed conversations than this in one batch: every page renders again.
MAX_TRACKED = 2_000


@dataclass(frozen=True)
class Changes:
    conversations: frozenset[str] = frozenset()
    panels: frozenset[str] = frozenset()
    everything: bool = False

    def __bool__(self) -> bool:
        return self.everything or bool(self.conversations or self.panels)

    def __or__(self, other: Changes) -> Changes:
        conversations = self.conversations | other.conversations
        everything = self.everything or other.everything or len(conversations) > MAX_TRACKED
        return Changes(
            conversations=frozenset() if everything else conversations,
            panels=self.panels | other.panels,
            everything=everything,
        )

    def any_conversation(self) -> bool:
        return self.everything or bool(self.conversations)

    def conversation(self, conversation_id: str) -> bool:
        return self.everything or conversation_id in self.conversations

    def panel(self, name: str) -> bool:
        return self.everything or name in self.panels


EVERYTHING = Changes(everything=True)
NOTHING = Changes()


def conversation_of(event: Event) -> str | None:
    """The conversation an event is about, if any."""
    named = event.data.get("conversation_id") if isinstance(event.data, dict) else None
    if named:
        return str(named)
    if event.subject and event.type.startswith(CONVERSATION_TYPES):
        return event.subject
    return None


def changes_of(events: Iterable[Event]) -> Changes:
    conversations: set[str] = set()
    panels: set[str] = set()
    watching = registry.panels("page") + registry.panels("conversation")
    for event in events:
        conversation = conversation_of(event)
        if conversation:
            conversations.add(conversation)
        panels.update(p.name for p in watching if p.watches_type(event.type))
    everything = len(conversations) > MAX_TRACKED
    return Changes(
        conversations=frozenset() if everything else frozenset(conversations),
        panels=frozenset(panels),
        everything=everything,
    )
