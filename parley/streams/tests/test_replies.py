"""Reply streams (SPEC X-12): every reply once, to one collector, in commit order."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
import time_machine
from django.conf import settings as django_settings
from django.utils import timezone

from parley.conversations import services as conversations
from parley.conversations.models import Message
from parley.outbox.services import event_append
from parley.streams.models import ReplyItem, Stream
from parley.streams.tests.live import LiveClient

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
EVENT_TIME = datetime(2025, 6, 4, 14, 20, 5, tzinfo=UTC)
START = "/api/replies/stream/start"
PULL_NEXT = re.compile(r"^/api/replies/stream/[a-z0-9]{12}$")
TENANT_A = UUID("aaaaaaaa-0000-4000-8000-000000000001")
TENANT_B = UUID("bbbbbbbb-0000-4000-8000-000000000002")


def replied(*texts: str, tenant_id: UUID | None = None, at: datetime = T0) -> dict[str, Any]:
    """A conversation with a burst of ``texts``, answered by the sweep: its reply, as streamed."""
    conversation_id, inbound = uuid.uuid4(), []
    with time_machine.travel(at, tick=False) as clock:
        conversations.conversation_open(conversation_id=conversation_id, tenant_id=tenant_id)
        for text in texts:
            inbound.append(uuid.uuid4())
            conversations.message_ingest(
                message_id=inbound[-1],
                conversation_id=conversation_id,
                content=text,
                timestamp=EVENT_TIME,
            )
            clock.shift(1)
        clock.shift(django_settings.GROUP_WINDOW.total_seconds() + 1)
        conversations.due_work_sweep()
    reply = Message.objects.get(conversation_id=conversation_id, type="OUTBOUND")
    return {
        "id": str(reply.id),
        "conversation_id": str(conversation_id),
        "content": reply.content,
        "timestamp": reply.timestamp.isoformat().replace("+00:00", "Z"),
        "in_reply_to": [str(i) for i in inbound],
    }


def problem(reply: Any, status: int, code: str) -> None:
    assert (reply.status, reply.headers["content-type"]) == (status, "application/problem+json")
    assert reply.json()["code"] == code
    assert "pull-next" not in reply.headers


# --- Items: one per recorded reply, on every path ---------------------------------------


@pytest.mark.django_db
@pytest.mark.usefixtures("sql_path")
def test_every_recorded_reply_gets_one_item_in_its_transaction() -> None:
    first = replied("hello", "anyone there?", tenant_id=TENANT_A)
    second = replied("hi")

    items = list(ReplyItem.objects.order_by("id"))
    assert [(str(i.message_id), str(i.conversation_id)) for i in items] == [
        (first["id"], first["conversation_id"]),
        (second["id"], second["conversation_id"]),
    ]
    assert [i.tenant_id for i in items] == [TENANT_A, django_settings.DEFAULT_TENANT_ID]
    assert all(i.delivered_at is None and i.interaction_id is None for i in items)


@pytest.mark.django_db
def test_an_agents_message_and_other_facts_are_never_reply_items() -> None:
    agent = replied("hello")  # one real reply
    conversation_id = UUID(agent["conversation_id"])
    Message.objects.create(
        id=uuid.uuid4(),
        conversation_id=conversation_id,
        type="OUTBOUND",
        content="A human agent writes",
        timestamp=timezone.now(),
    )
    event_append(
        type="message.sent",
        occurred_at=timezone.now(),
        tenant_id=None,
        subject=str(conversation_id),
        data={"message_id": str(uuid.uuid4()), "conversation_id": str(conversation_id)},
    )

    assert [str(m) for m in ReplyItem.objects.values_list("message_id", flat=True)] == [agent["id"]]


# --- The stream --------------------------------------------------------------------------

pytestmark_live = pytest.mark.django_db(transaction=True)


@pytestmark_live
def test_a_reply_stream_hands_out_each_reply_once_with_what_it_answers(live: LiveClient) -> None:
    first = replied("I would like to rent", "an apartment")
    second = replied("hello")

    one = live.get(START)
    two = live.get(one.headers["pull-next"], accept="multipart/json")
    nothing = live.get(two.headers["pull-next"])

    assert (one.status, one.headers["content-type"]) == (200, "application/json")
    assert PULL_NEXT.fullmatch(one.headers["pull-next"])
    assert one.json() == first  # commit order
    assert two.json() == [second]
    assert nothing.status == 204
    assert nothing.headers["pull-next"] == two.headers["pull-next"]
    assert list(first) == ["id", "conversation_id", "content", "timestamp", "in_reply_to"]


@pytestmark_live
def test_two_reply_streams_never_get_the_same_reply(live: LiveClient) -> None:
    replies = [replied(f"message {n}")["id"] for n in range(5)]

    a = live.get(START, accept="multipart/json")
    b = live.get(START, accept="multipart/json")

    assert a.status == 200
    assert b.status == 204
    assert [r["id"] for r in a.json()] == replies


@pytestmark_live
def test_a_tenants_stream_sees_only_that_tenants_replies(live: LiveClient) -> None:
    of_a = replied("for a", tenant_id=TENANT_A)
    of_b = replied("for b", tenant_id=TENANT_B)

    b = live.get(f"{START}?tenant={TENANT_B}", accept="multipart/json")
    every = live.get(START, accept="multipart/json")

    assert b.json() == [of_b]
    assert every.json() == [of_a]
    assert Stream.objects.get(key=str(TENANT_B)).kind == "replies"


@pytestmark_live
def test_the_cap_counts_per_tenant(live: LiveClient, settings: Any) -> None:
    settings.REPLY_STREAM_MAX_PER_TENANT = 1
    settings.REPLY_STREAM_POLL_SECONDS = 0.2
    upper = str(TENANT_A).upper()  # the same tenant, however it is spelled

    assert live.get(f"{START}?tenant={TENANT_A}").status == 204
    refused = live.get(f"{START}?tenant={upper}")
    assert live.get(f"{START}?tenant={TENANT_B}").status == 204
    assert live.get(START).status == 204  # streams of every tenant have a cap of their own
    assert live.get(START).status == 429

    problem(refused, 429, "too_many_streams")
    assert int(refused.headers["retry-after"]) >= 1


@pytestmark_live
def test_bad_input_of_a_reply_stream_is_a_clear_4xx(live: LiveClient) -> None:
    pix = live.get("/api/pix/00000000/stream/start").headers["pull-next"].rsplit("/", 1)[1]

    problem(live.get(f"{START}?tenant=not-a-uuid"), 400, "invalid_tenant")
    problem(live.get(f"{START}?tenant="), 400, "invalid_tenant")
    problem(live.get("/api/replies/stream/abcdefabcdef"), 404, "stream_not_found")
    problem(live.get(f"/api/replies/stream/{pix}"), 404, "stream_not_found")  # another kind
    problem(live.delete(f"/api/replies/stream/{pix}"), 404, "stream_not_found")
    problem(live.get(START, accept="text/html"), 406, "not_acceptable")
    reply = live.request("POST", START)
    assert (reply.status, reply.headers["allow"]) == (405, "GET")
    assert Stream.objects.filter(kind="replies").count() == 0


@pytestmark_live
def test_delete_closes_a_reply_stream_and_never_requeues(live: LiveClient) -> None:
    replied("hello")
    path = live.get(START).headers["pull-next"]

    assert (live.delete(path).status, live.delete(path).json()) == (200, {})
    problem(live.get(path), 410, "stream_closed")
    assert ReplyItem.objects.filter(delivered_at__isnull=True).count() == 0
    assert Stream.objects.get().acknowledged_count == 1


@pytestmark_live
def test_a_waiting_reply_stream_answers_as_soon_as_a_reply_commits(
    live: LiveClient, settings: Any
) -> None:
    settings.REPLY_STREAM_POLL_SECONDS = 5.0

    async def scenario() -> tuple[Any, float, dict[str, Any]]:
        waiting = asyncio.ensure_future(live.call("GET", f"{START}?tenant={TENANT_A}"))
        await asyncio.sleep(0.5)
        reply = await asyncio.to_thread(_replied_and_closed, TENANT_A)
        written_at = asyncio.get_running_loop().time()
        answer = await waiting
        return answer, asyncio.get_running_loop().time() - written_at, reply

    answer, after_commit, reply = live.run(scenario())

    assert answer.status == 200
    assert answer.json() == reply
    assert after_commit < 1.0  # the trigger's bell on PostgreSQL, a 0.25 s poll on SQLite


def _replied_and_closed(tenant_id: UUID) -> dict[str, Any]:
    from django.db import connection

    try:
        return replied("now", tenant_id=tenant_id, at=timezone.now())
    finally:
        connection.close()
