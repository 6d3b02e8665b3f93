"""A-11: every OUTBOUND reply pushed to REPLY_WEBHOOK_URL as a signed webhook, by the same engine.

The push reads the outbox's reply.sent events through a durable cursor, so
these tests commit (on PostgreSQL a reader sees finished transactions only).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from django.utils import timezone
from pytest_httpserver import HTTPServer
from standardwebhooks.webhooks import Webhook

from parley.assistance import services
from parley.assistance.models import Delivery
from parley.assistance.services.record import Step
from parley.conversations import services as conversations
from parley.conversations.models import Message, MessageGroup

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("sql_path")]

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def push(settings: Any, httpserver: HTTPServer) -> HTTPServer:
    settings.REPLY_WEBHOOK_URL = httpserver.url_for("/replies")
    settings.REPLY_WEBHOOK_SECRET = SECRET
    services.reply_push_pump()  # the reader starts at the outbox's present
    return httpserver


def pump() -> int:
    """Run the reader until it has read something (or 15 s).

    A reader sees an event once every transaction older than it has ended,
    on the whole server: another database's long transaction delays it.
    """
    deadline = time.monotonic() + 15
    while True:
        created = services.reply_push_pump()
        if created or time.monotonic() > deadline:
            return created
        time.sleep(0.1)


def reply_to_a_burst() -> tuple[Message, list[uuid.UUID]]:
    conversation_id = uuid.uuid4()
    conversations.conversation_open(conversation_id=conversation_id)
    inbound = [uuid.uuid4(), uuid.uuid4()]
    for message_id in inbound:
        conversations.message_ingest(
            message_id=message_id,
            conversation_id=conversation_id,
            content="hi",
            timestamp=timezone.now(),
        )
    conversations.conversation_close(conversation_id=conversation_id)  # due now (G-5)
    group = MessageGroup.objects.get(conversation_id=conversation_id)
    conversations.group_reply(group_id=group.pk)
    return Message.objects.get(reply_to=group), inbound


def test_a_reply_is_pushed_signed_with_its_id_as_the_key(push: HTTPServer) -> None:
    push.expect_request("/replies", method="POST").respond_with_data("ok")
    reply, inbound = reply_to_a_burst()
    assert pump() == 1
    d = Delivery.objects.get(pk=reply.pk)
    assert (d.purpose, d.status, d.conversation_id) == ("reply", "PENDING", reply.conversation_id)
    assert services.delivery_attempt(delivery_id=d.pk).step is Step.SENT
    ((request, _),) = push.log
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["webhook-id"] == headers["idempotency-key"] == str(reply.pk)
    body = Webhook(SECRET).verify(request.get_data(), headers)
    assert body == {
        "type": "reply.sent",
        "data": {
            "id": str(reply.pk),
            "conversation_id": str(reply.conversation_id),
            "content": reply.content,
            "timestamp": reply.timestamp.isoformat().replace("+00:00", "Z"),
            "in_reply_to": [str(m) for m in inbound],
        },
    }


def test_reading_the_outbox_twice_pushes_nothing_twice(push: HTTPServer) -> None:
    reply_to_a_burst()
    assert pump() == 1
    assert services.reply_push_pump() == 0
    assert Delivery.objects.filter(purpose="reply").count() == 1


def test_a_failed_push_is_retried_like_any_delivery(push: HTTPServer) -> None:
    push.expect_ordered_request("/replies").respond_with_data("busy", status=503)
    reply, _ = reply_to_a_burst()
    assert pump() == 1
    assert services.delivery_attempt(delivery_id=reply.pk).step is Step.RETRY
    d = Delivery.objects.get(pk=reply.pk)
    assert (d.status, d.attempts, d.last_error) == ("QUEUED", 1, "HTTP 503: busy")


def test_without_reply_webhook_url_nothing_is_read(settings: Any) -> None:
    settings.REPLY_WEBHOOK_URL = ""
    reply_to_a_burst()
    assert services.reply_push_pump() == 0
    assert not Delivery.objects.exists()
