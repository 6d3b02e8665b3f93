"""Outbox events as CloudEvents 1.0 JSON lines, grouped into objects (T-4).

Each line is the ``cloudevents`` SDK's structured JSON of one event:

* ``specversion`` "1.0";
* ``id`` the outbox sequence number, which no other event of this
  deployment has (so ``source`` + ``id`` is unique, as the spec asks);
* ``source`` ``/parley/tenants/{tenant_id}`` (``/parley`` for a fact that
  belongs to no tenant);
* ``type`` the fact (``conversation.closed``...);
* ``time`` when the fact happened, UTC, not when it was exported;
* ``subject`` the conversation id;
* ``datacontenttype`` ``application/json`` and ``data`` the fact's data.

The bytes depend only on the event, with a fixed attribute order, so a
re-run writes the same bytes. An object holds the events of one type and
one UTC day of one batch, in sequence order, named
``analytics/type={type}/dt={UTC date}/{first seq}_{last seq}.jsonl`` with
the sequence numbers zero-padded to 20 digits (every 64-bit number fits),
so names sort by their first event.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC
from uuid import UUID

from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from parley.outbox.selectors import Event

# The types SPEC T-4 exports; the outbox may carry others (for the console).
EXPORTED_TYPES = frozenset(
    {
        "conversation.opened",
        "conversation.closed",
        "message.received",
        "reply.sent",
        "survey.recorded",
        "assistance.sent",
        "assistance.failed",
        "transcript.archived",
    }
)
DATA_CONTENT_TYPE = "application/json"
_FORMAT = JSONFormat()


def source(tenant_id: UUID | None) -> str:
    return f"/parley/tenants/{tenant_id}" if tenant_id is not None else "/parley"


def cloudevent(event: Event) -> CloudEvent:
    attributes = {
        "specversion": "1.0",
        "id": str(event.id),
        "source": source(event.tenant_id),
        "type": event.type,
        "time": event.occurred_at.astimezone(UTC),
    }
    if event.subject:
        attributes["subject"] = event.subject
    attributes["datacontenttype"] = DATA_CONTENT_TYPE
    return CloudEvent(attributes, event.data)


def line(event: Event) -> bytes:
    """One JSON line (no newline inside: JSON escapes them in strings)."""
    return _FORMAT.write(cloudevent(event)) + b"\n"


def object_name(type: str, day: str, first: int, last: int) -> str:
    return f"analytics/type={type}/dt={day}/{first:020d}_{last:020d}.jsonl"


def objects(events: Iterable[Event]) -> dict[str, bytes]:
    """The objects for a batch's events: name -> JSON lines. Types not in
    ``EXPORTED_TYPES`` are left out."""
    groups: dict[tuple[str, str], list[Event]] = defaultdict(list)
    for event in events:
        if event.type in EXPORTED_TYPES:
            day = event.occurred_at.astimezone(UTC).date().isoformat()
            groups[(event.type, day)].append(event)
    result = {}
    for (kind, day), members in sorted(groups.items()):
        members.sort(key=lambda e: e.id)
        name = object_name(kind, day, members[0].id, members[-1].id)
        result[name] = b"".join(line(e) for e in members)
    return result
