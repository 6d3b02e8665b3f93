"""Applying queued bodies once (Q-6), dead letters (Q-7), re-drive, and the dead-letter API."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client, override_settings

from parley.conversations.models import Conversation, Message
from parley.intake import services
from parley.intake.models import DeadLetter, InboxEvent
from parley.intake.services import Outcome, batch_apply, incoming
from parley.outbox.models import OutboxEvent
from tests.payloads import close_conversation, envelope, new_conversation, new_message, survey

pytestmark = pytest.mark.django_db


def body(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def apply(*payloads: Any, source: str = "redis") -> list[services.Incoming]:
    items = [incoming(p if isinstance(p, bytes) else body(p), source=source) for p in payloads]
    batch_apply(items)
    return items


def test_native_events_take_type_and_id_as_event_id_and_redelivery_is_a_no_op() -> None:
    conversation_id, message_id = uuid.uuid4(), uuid.uuid4()
    first = apply(
        new_conversation(conversation_id),
        new_message(message_id, conversation_id),
        close_conversation(conversation_id),
    )
    assert [item.outcome for item in first] == [Outcome.APPLIED] * 3
    assert set(InboxEvent.objects.values_list("event_id", flat=True)) == {
        f"NEW_CONVERSATION:{conversation_id}",
        f"NEW_MESSAGE:{message_id}",
        f"CLOSE_CONVERSATION:{conversation_id}",
    }
    # The whole sequence again, as a broker would redeliver it: no conversation_exists,
    # no conversation_already_closed, nothing new.
    again = apply(
        new_conversation(conversation_id),
        new_message(message_id, conversation_id),
        close_conversation(conversation_id),
    )
    assert [item.outcome for item in again] == [Outcome.DUPLICATE] * 3
    assert not DeadLetter.objects.exists()
    assert Message.objects.count() == 1


def test_envelope_events_deduplicate_on_correlation_id() -> None:
    payload = envelope(correlation_id="corr-1", message_id="m-1")
    assert apply(payload)[0].outcome is Outcome.APPLIED
    assert apply(payload)[0].outcome is Outcome.DUPLICATE
    assert InboxEvent.objects.get().event_id == "corr-1"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"\xff\xfe\x00garbage", "invalid_json"),
        (
            b'{"type": "DELETE_EVERYTHING", "timestamp": "2025-06-04T14:20:00Z", "data": {}}',
            "unknown_type",
        ),
        (b'{"event_type": "message.edited", "correlation_id": "x", "data": {}}', "unknown_type"),
        (
            b'{"type": "NEW_MESSAGE", "timestamp": "2025-06-04T14:20:00Z", "data": {}}',
            "invalid_payload",
        ),
        (b"[1, 2, 3]", "invalid_payload"),
    ],
)
def test_bodies_that_do_not_parse_become_dead_letters(raw: bytes, code: str) -> None:
    [item] = apply(raw)
    assert item.outcome is Outcome.DEAD_LETTERED
    letter = DeadLetter.objects.get()
    assert (letter.code, letter.source) == (code, "redis")
    assert letter.raw_body() == raw
    assert not InboxEvent.objects.exists()
    event = OutboxEvent.objects.get(type="intake.dead_lettered")
    assert event.data["dead_letter_id"] == letter.pk
    assert event.data["code"] == code


def test_a_body_that_is_not_utf8_keeps_its_bytes_in_base64() -> None:
    raw = b'{"type": "NEW_MESSAGE", "x": "\xff\xfe"}'
    apply(raw)
    letter = DeadLetter.objects.get()
    assert "\ufffd" in letter.body
    assert letter.body_base64 == base64.b64encode(raw).decode()


def test_refusals_are_dead_letters_with_their_own_code_and_take_no_inbox_row() -> None:
    conversation_id = uuid.uuid4()
    items = apply(
        new_message(uuid.uuid4(), conversation_id),  # buffered: applied
        new_conversation(conversation_id),
        close_conversation(conversation_id),
        new_message(uuid.uuid4(), conversation_id),  # conversation_closed
        survey(conversation_id, "NPS", 11),  # invalid_score
    )
    assert [item.outcome for item in items] == [
        Outcome.APPLIED,
        Outcome.APPLIED,
        Outcome.APPLIED,
        Outcome.DEAD_LETTERED,
        Outcome.DEAD_LETTERED,
    ]
    assert sorted(DeadLetter.objects.values_list("code", flat=True)) == [
        "conversation_closed",
        "invalid_score",
    ]
    assert InboxEvent.objects.count() == 3
    # The refusals rolled back to their savepoints; the rest committed.
    assert Conversation.objects.get(pk=conversation_id).status == "CLOSED"


def test_a_redriven_dead_letter_can_still_apply_once() -> None:
    conversation_id = uuid.uuid4()
    apply(close_conversation(conversation_id))  # before its conversation: not found
    letter = DeadLetter.objects.get()
    assert letter.code == "conversation_not_found"
    apply(new_conversation(conversation_id))
    redriven = services.dead_letter_redrive(dead_letter_id=letter.pk)
    assert redriven.outcome is Outcome.APPLIED
    assert Conversation.objects.get(pk=conversation_id).status == "CLOSED"
    again = services.dead_letter_redrive(dead_letter_id=letter.pk)
    assert again.outcome is Outcome.DUPLICATE
    letter.refresh_from_db()
    assert (letter.redrive_count, letter.redrive_result) == (2, "duplicate")


def test_a_redrive_refused_again_keeps_the_letter_with_the_new_reason() -> None:
    apply(new_message(uuid.uuid4(), uuid.uuid4()) | {"timestamp": "yesterday"})
    letter = DeadLetter.objects.get()
    redriven = services.dead_letter_redrive(dead_letter_id=letter.pk)
    assert redriven.outcome is Outcome.DEAD_LETTERED
    assert redriven.code == "invalid_payload"
    assert DeadLetter.objects.count() == 1


def test_the_redrive_command(capsys: Any) -> None:
    conversation_id = uuid.uuid4()
    apply(close_conversation(conversation_id), b"nope")
    apply(new_conversation(conversation_id))
    call_command("intake_redrive", "--list")
    assert "conversation_not_found" in capsys.readouterr().out
    call_command("intake_redrive", "--all")
    out = capsys.readouterr().out
    assert "1 applied" in out
    assert "1 invalid_json" in out
    assert Conversation.objects.get(pk=conversation_id).status == "CLOSED"


TOKEN = "t0ken"


@override_settings(API_TOKEN=TOKEN)
def test_the_dead_letter_api_lists_newest_first_filters_and_redrives(client: Client) -> None:
    conversation_id = uuid.uuid4()
    apply(b"{", close_conversation(conversation_id), b"[]")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/intake/dead-letters/").status_code == 401
    listed = client.get("/intake/dead-letters/?page_size=2", headers=auth).json()
    assert listed["count"] == 3
    assert listed["next"] is not None
    ids = [letter["id"] for letter in listed["results"]]
    assert ids == sorted(ids, reverse=True)
    assert set(listed["results"][0]) >= {"id", "source", "received_at", "reason", "code", "body"}
    only = client.get("/intake/dead-letters/?code=conversation_not_found", headers=auth).json()
    assert only["count"] == 1
    letter_id = only["results"][0]["id"]
    assert client.post(f"/intake/dead-letters/{letter_id}/redrive").status_code == 401
    apply(new_conversation(conversation_id))
    response = client.post(f"/intake/dead-letters/{letter_id}/redrive", headers=auth)
    assert response.status_code == 200
    assert response.json()["outcome"] == "applied"
    assert response.json()["dead_letter"]["redrive_result"] == "applied"
    assert client.post("/intake/dead-letters/999999/redrive", headers=auth).status_code == 404
    assert client.post("/intake/dead-letters/x/redrive", headers=auth).status_code == 404


def test_two_copies_in_one_batch_apply_once() -> None:
    payload = envelope(correlation_id="twice", message_id="m-2")
    items = apply(payload, payload)
    assert [item.outcome for item in items] == [Outcome.APPLIED, Outcome.DUPLICATE]
    assert Message.objects.count() == 1


def test_a_refusal_in_a_batch_leaves_the_others_applied_in_order() -> None:
    conversation_id = uuid.uuid4()
    items = apply(
        new_conversation(conversation_id),
        new_conversation(conversation_id),  # conversation_exists? no: the same event id
        survey(conversation_id, "CSAT", 9),
        new_message(uuid.uuid4(), conversation_id),
    )
    assert [item.outcome for item in items] == [
        Outcome.APPLIED,
        Outcome.DUPLICATE,
        Outcome.DEAD_LETTERED,
        Outcome.APPLIED,
    ]
    assert Message.objects.filter(conversation_id=conversation_id).count() == 1
    assert InboxEvent.objects.count() == 2
