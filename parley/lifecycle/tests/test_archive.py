"""The transcript archive (T-5), on a folder and on moto's S3 server."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.test import Client

from conftest import ObjectStoreUnderTest
from parley.conversations import services as conversation_services
from parley.conversations.models import Conversation, Message
from parley.core.objectstore import object_store
from parley.lifecycle import services
from parley.lifecycle.services import ArchiveOutcome
from parley.outbox.models import OutboxEvent
from parley.tenants.models import Tenant

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 8, 14, 0, tzinfo=UTC)


def at(moment: datetime) -> Any:
    return time_machine.travel(moment, tick=False)


@pytest.fixture
def tenant(make_tenant: Callable[..., Tenant]) -> Tenant:
    return make_tenant(zone="America/Sao_Paulo")


def a_closed_conversation(
    tenant: Tenant, open_conversation: Any, send_message: Any, *, closed: datetime = T0
) -> uuid.UUID:
    """Two messages answered by one reply, then closed."""
    with at(closed - timedelta(minutes=5)):
        conversation_id = open_conversation(tenant)
        send_message(conversation_id, "Hi, is the flat still free?")
    with at(closed - timedelta(minutes=5) + timedelta(seconds=1)):
        send_message(conversation_id, "And is there parking?")
    with at(closed - timedelta(minutes=4)):
        conversation_services.due_work_sweep()
    with at(closed):
        conversation_services.conversation_close(conversation_id=conversation_id)
    return conversation_id


def test_a_closed_conversation_is_archived_once_with_its_transcript_and_sha256(
    objects: ObjectStoreUnderTest,
    tenant: Tenant,
    open_conversation: Any,
    send_message: Any,
    client: Client,
) -> None:
    conversation_id = a_closed_conversation(tenant, open_conversation, send_message)
    before = client.get(f"/conversations/{conversation_id}/").json()

    with at(T0 + timedelta(seconds=10)):
        assert services.transcript_archive(conversation_id=conversation_id) is (
            ArchiveOutcome.ARCHIVED
        )

    name = f"transcripts/tenant={tenant.pk}/dt=2026-03-08/{conversation_id}.json"
    assert objects.names() == [name]
    body = objects.read(name)
    transcript = json.loads(body)
    # The T-3 fields as the read API shows them, in its order, less the two
    # fields about the archive itself; then every message in R-1 order.
    expected_fields = {k: v for k, v in before.items() if k not in ("messages",)}
    del expected_fields["archived_at"], expected_fields["transcript_sha256"]
    assert list(transcript) == ["conversation", "messages"]
    assert transcript["conversation"] == expected_fields
    assert list(transcript["conversation"]) == list(expected_fields)
    assert transcript["messages"] == before["messages"]
    assert [m["type"] for m in transcript["messages"]] == ["INBOUND", "INBOUND", "OUTBOUND"]
    assert transcript["conversation"]["close_reason"] == "manual"

    conversation = Conversation.objects.get(pk=conversation_id)
    assert conversation.transcript_sha256 == hashlib.sha256(body).hexdigest()
    assert conversation.archived_at == T0 + timedelta(seconds=10)
    event = OutboxEvent.objects.get(type="transcript.archived")
    assert (event.subject, event.tenant_id, event.occurred_at) == (
        str(conversation_id),
        tenant.pk,
        T0 + timedelta(seconds=10),
    )
    assert event.data == {
        "conversation_id": str(conversation_id),
        "object": name,
        "sha256": conversation.transcript_sha256,
        "bytes": len(body),
    }
    # The read model now shows the archive (T-3).
    after = client.get(f"/conversations/{conversation_id}/").json()
    assert after["archived_at"] == "2026-03-08T14:00:10Z"
    assert after["transcript_sha256"] == conversation.transcript_sha256

    # Archiving again changes nothing.
    assert services.transcript_archive(conversation_id=conversation_id) is ArchiveOutcome.ALREADY
    assert objects.read(name) == body
    assert OutboxEvent.objects.filter(type="transcript.archived").count() == 1


def test_the_date_in_the_name_is_the_utc_close_date(
    objects: ObjectStoreUnderTest, tenant: Tenant, open_conversation: Any, send_message: Any
) -> None:
    """Closed at 22:30 in São Paulo on 8 March: 01:30 UTC on 9 March."""
    closed = datetime(2026, 3, 9, 1, 30, tzinfo=UTC)
    conversation_id = a_closed_conversation(tenant, open_conversation, send_message, closed=closed)
    with at(closed + timedelta(seconds=1)):
        services.transcripts_archive_sweep()

    name = f"transcripts/tenant={tenant.pk}/dt=2026-03-09/{conversation_id}.json"
    assert objects.names() == [name]


def test_a_conversation_that_owes_a_reply_waits_for_it(
    objects: ObjectStoreUnderTest, tenant: Tenant, open_conversation: Any, send_message: Any
) -> None:
    """G-5's reply to the close comes first; the transcript then holds it."""
    with at(T0):
        conversation_id = open_conversation(tenant)
        send_message(conversation_id)
        conversation_services.conversation_close(conversation_id=conversation_id)
        assert services.transcripts_archive_sweep() == (0, False)
        assert objects.names() == []
    with at(T0 + timedelta(seconds=1)):
        conversation_services.due_work_sweep()  # writes the reply
        assert services.transcripts_archive_sweep() == (1, False)

    (name,) = objects.names()
    messages = json.loads(objects.read(name))["messages"]
    assert [m["type"] for m in messages] == ["INBOUND", "OUTBOUND"]


def test_open_conversations_are_not_archived(
    objects: ObjectStoreUnderTest, tenant: Tenant, open_conversation: Any
) -> None:
    conversation_id = open_conversation(tenant)

    assert services.transcript_archive(conversation_id=conversation_id) is ArchiveOutcome.NOT_DUE
    assert services.transcripts_archive_sweep() == (0, False)
    assert services.transcript_archive(conversation_id=uuid.uuid4()) is ArchiveOutcome.NOT_DUE
    assert objects.names() == []


def test_an_archiver_that_died_after_writing_records_the_object_that_is_there(
    objects: ObjectStoreUnderTest, tenant: Tenant, open_conversation: Any, send_message: Any
) -> None:
    """The object was written, the record was not; a survey changed the scores since.
    The object is not written again: its bytes are what the record describes."""
    conversation_id = a_closed_conversation(tenant, open_conversation, send_message)
    conversation = Conversation.objects.get(pk=conversation_id)
    from parley.lifecycle.services.archive import transcript_bytes, transcript_name

    written = transcript_bytes(
        Conversation.objects.prefetch_related("messages").get(pk=conversation_id)
    )
    object_store().put_new(transcript_name(conversation), written)
    Conversation.objects.filter(pk=conversation_id).update(csat=5)

    assert services.transcript_archive(conversation_id=conversation_id) is ArchiveOutcome.ARCHIVED

    assert objects.read(transcript_name(conversation)) == written
    conversation.refresh_from_db()
    assert conversation.transcript_sha256 == hashlib.sha256(written).hexdigest()


def test_the_sweep_goes_on_when_the_object_store_fails(
    settings: Any,
    tmp_path: Any,
    tenant: Tenant,
    open_conversation: Any,
    send_message: Any,
) -> None:
    first = a_closed_conversation(tenant, open_conversation, send_message)
    second = a_closed_conversation(tenant, open_conversation, send_message)
    blocked = tmp_path / "objects"
    blocked.write_text("a file where the folder should be")
    settings.STORAGES = {
        **settings.STORAGES,
        "objects": {
            "BACKEND": "parley.core.objectstore.FolderStorage",
            "OPTIONS": {"location": str(blocked)},
        },
    }

    assert services.transcripts_archive_sweep() == (0, False)
    assert Conversation.objects.filter(pk__in=[first, second], archived_at=None).count() == 2

    blocked.unlink()
    assert services.transcripts_archive_sweep() == (2, False)


def test_messages_keep_their_ids_and_external_ids_in_the_transcript(
    objects: ObjectStoreUnderTest, tenant: Tenant, open_conversation: Any, send_message: Any
) -> None:
    conversation_id = a_closed_conversation(tenant, open_conversation, send_message)
    first = Message.objects.filter(conversation_id=conversation_id, type="INBOUND").order_by(
        "timestamp"
    )[0]
    Message.objects.filter(pk=first.pk).update(external_id="wamid.HBgM")
    services.transcripts_archive_sweep()

    (name,) = objects.names()
    messages = json.loads(objects.read(name))["messages"]
    assert messages[0] == {
        "id": str(first.pk),
        "type": "INBOUND",
        "content": "Hi, is the flat still free?",
        "timestamp": "2026-03-08T13:55:00Z",
        "external_id": "wamid.HBgM",
    }
    assert "external_id" not in messages[1]
