"""CloudEvents 1.0 JSON lines and their objects (T-4), byte for byte."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from cloudevents.core.formats.json import JSONFormat

from parley.analytics import lines
from parley.outbox.selectors import Event

TENANT = uuid.UUID("9f0c3b52-0c0e-4c39-8b2e-1f4a1a8f4e10")
CONVERSATION = "6a41b347-8d80-4ce9-84ba-7af66f369f6a"


def event(
    seq: int,
    kind: str = "conversation.closed",
    *,
    at: datetime = datetime(2026, 3, 8, 7, 0, 0, 123456, tzinfo=UTC),
    tenant: uuid.UUID | None = TENANT,
    subject: str = CONVERSATION,
    data: dict[str, object] | None = None,
) -> Event:
    data = data if data is not None else {"conversation_id": CONVERSATION, "reason": "scheduled"}
    return Event(seq, 900 + seq, kind, at, tenant, subject, data)


def test_a_line_is_the_sdks_structured_json_with_every_attribute_of_t4() -> None:
    assert lines.line(event(42)) == (
        b'{"specversion": "1.0", "id": "42", '
        b'"source": "/parley/tenants/9f0c3b52-0c0e-4c39-8b2e-1f4a1a8f4e10", '
        b'"type": "conversation.closed", "time": "2026-03-08T07:00:00.123456Z", '
        b'"subject": "6a41b347-8d80-4ce9-84ba-7af66f369f6a", '
        b'"datacontenttype": "application/json", '
        b'"data": {"conversation_id": "6a41b347-8d80-4ce9-84ba-7af66f369f6a", '
        b'"reason": "scheduled"}}\n'
    )


def test_a_line_reads_back_as_the_same_cloudevent() -> None:
    original = event(7, "message.received", data={"message_id": "m", "text": "olá\nmundo"})
    line = lines.line(original)

    assert line.count(b"\n") == 1
    assert line.endswith(b"\n")
    parsed = JSONFormat().read(None, line)
    assert parsed.get_attributes() == {
        "specversion": "1.0",
        "id": "7",
        "source": f"/parley/tenants/{TENANT}",
        "type": "message.received",
        "time": original.occurred_at,
        "subject": CONVERSATION,
        "datacontenttype": "application/json",
    }
    assert parsed.get_data() == {"message_id": "m", "text": "olá\nmundo"}


def test_the_same_event_always_gives_the_same_bytes() -> None:
    assert lines.line(event(5)) == lines.line(event(5))


def test_a_fact_without_a_tenant_or_subject_still_makes_a_valid_event() -> None:
    parsed = json.loads(lines.line(event(3, tenant=None, subject="")))

    assert parsed["source"] == "/parley"
    assert "subject" not in parsed


def test_objects_split_a_batch_by_type_and_utc_day_and_leave_other_types_out() -> None:
    late = datetime(2026, 3, 8, 23, 59, 59, 999999, tzinfo=UTC)
    early = datetime(2026, 3, 9, 0, 0, tzinfo=UTC)
    batch = [
        event(12, "conversation.closed", at=late),
        event(10, "conversation.closed", at=late),
        event(11, "conversation.closed", at=early),
        event(13, "console.only", at=late),
        event(14, "reply.sent", at=early),
    ]

    objects = lines.objects(batch)

    assert sorted(objects) == [
        "analytics/type=conversation.closed/dt=2026-03-08/00000000000000000010_00000000000000000012.jsonl",
        "analytics/type=conversation.closed/dt=2026-03-09/00000000000000000011_00000000000000000011.jsonl",
        "analytics/type=reply.sent/dt=2026-03-09/00000000000000000014_00000000000000000014.jsonl",
    ]
    first = objects[
        "analytics/type=conversation.closed/dt=2026-03-08/00000000000000000010_00000000000000000012.jsonl"
    ]
    assert [json.loads(line)["id"] for line in first.splitlines()] == ["10", "12"]


def test_every_t4_type_is_exported() -> None:
    exported = {
        "conversation.opened",
        "conversation.closed",
        "message.received",
        "reply.sent",
        "survey.recorded",
        "assistance.sent",
        "assistance.failed",
        "transcript.archived",
    }
    assert exported == lines.EXPORTED_TYPES
