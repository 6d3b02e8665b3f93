"""Surveys (Q-3): SURVEY_RESPONSE and weni_csat / weni_nps on the envelope."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from parley.conversations import services
from parley.conversations.models import Conversation, Message
from parley.outbox.models import OutboxEvent
from parley.surveys.models import SurveyResponse
from tests.payloads import envelope, new_conversation, survey

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversation_id(post_event: Any) -> uuid.UUID:
    conversation_id = uuid.uuid4()
    assert post_event(new_conversation(conversation_id)).status_code == 201
    return conversation_id


@pytest.mark.parametrize(
    ("kind", "score", "stored"),
    [("CSAT", 1, 1), ("CSAT", "5", 5), ("NPS", 0, 0), ("NPS", "0", 0), ("NPS", " 10 ", 10)],
)
def test_a_valid_score_is_recorded_and_zero_is_kept(
    post_event: Any, conversation_id: uuid.UUID, kind: str, score: Any, stored: int
) -> None:
    survey_id = uuid.uuid4()
    response = post_event(survey(conversation_id, kind, score, survey_id=survey_id))
    assert response.status_code == 202
    assert response.json() == {
        "id": str(survey_id),
        "conversation_id": str(conversation_id),
        "status": "recorded",
    }
    conversation = Conversation.objects.get(pk=conversation_id)
    assert getattr(conversation, kind.lower()) == stored
    row = SurveyResponse.objects.get(pk=survey_id)
    assert (row.kind, row.score, row.event_id) == (kind, stored, f"SURVEY_RESPONSE:{survey_id}")


@pytest.mark.parametrize(
    ("kind", "score"),
    [
        ("CSAT", 0),
        ("CSAT", 6),
        ("NPS", 11),
        ("NPS", -1),
        ("NPS", "ten"),
        ("NPS", ""),
        ("CSAT", 4.5),
        ("CSAT", "4.0"),
        ("CSAT", True),
        ("CSAT", None),
        ("NPS", [5]),
    ],
)
def test_anything_else_is_400_invalid_score_and_nothing_changes(
    post_event: Any, conversation_id: uuid.UUID, kind: str, score: Any
) -> None:
    response = post_event(survey(conversation_id, kind, score))
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_score"
    assert list(response.json()["errors"]) == ["data.score"]
    assert SurveyResponse.objects.count() == 0
    assert Conversation.objects.get(pk=conversation_id).csat is None
    assert not OutboxEvent.objects.filter(type="survey.recorded").exists()


def test_a_missing_score_is_invalid_score(post_event: Any, conversation_id: uuid.UUID) -> None:
    payload = survey(conversation_id, "NPS", 3)
    del payload["data"]["score"]
    assert post_event(payload).json()["code"] == "invalid_score"


def test_an_unknown_kind_or_conversation_is_refused(
    post_event: Any, conversation_id: uuid.UUID
) -> None:
    assert post_event(survey(conversation_id, "CES", 3)).json()["code"] == "invalid_payload"
    unknown = post_event(survey(uuid.uuid4(), "NPS", 3))
    assert unknown.status_code == 400
    assert unknown.json()["code"] == "conversation_not_found"


def test_a_repeated_id_changes_and_exports_nothing(
    post_event: Any, conversation_id: uuid.UUID
) -> None:
    survey_id = uuid.uuid4()
    first = post_event(survey(conversation_id, "CSAT", 2, survey_id=survey_id))
    again = post_event(survey(conversation_id, "CSAT", 2, survey_id=survey_id))
    assert again.status_code == 202
    assert again.json() == first.json()
    assert SurveyResponse.objects.count() == 1
    assert OutboxEvent.objects.filter(type="survey.recorded").count() == 1


def test_a_newer_answer_replaces_the_score_an_older_one_does_not(
    post_event: Any, conversation_id: uuid.UUID
) -> None:
    post_event(survey(conversation_id, "NPS", 3, timestamp="2025-06-04T14:30:00Z"))
    post_event(survey(conversation_id, "NPS", 9, timestamp="2025-06-04T14:40:00Z"))
    assert Conversation.objects.get(pk=conversation_id).nps == 9
    # A late redelivery of an answer given earlier still records, but does not win.
    post_event(survey(conversation_id, "NPS", 1, timestamp="2025-06-04T14:35:00Z"))
    assert Conversation.objects.get(pk=conversation_id).nps == 9
    assert SurveyResponse.objects.filter(conversation_id=conversation_id).count() == 3


def test_an_answer_after_close_is_recorded_with_the_datalake_fields(
    post_event: Any, conversation_id: uuid.UUID
) -> None:
    services.conversation_close(conversation_id=conversation_id)
    assert post_event(survey(conversation_id, "CSAT", 4)).status_code == 202
    conversation = Conversation.objects.get(pk=conversation_id)
    assert conversation.csat == 4
    event = OutboxEvent.objects.get(type="survey.recorded")
    assert event.subject == str(conversation_id)
    assert event.data["key"] == "weni_csat"
    assert event.data["value"] == 4
    assert event.data["conversation_start"].startswith(conversation.created_at.strftime("%Y-%m-%d"))
    assert event.data["conversation_end"] is not None
    assert event.occurred_at.isoformat() == "2025-06-04T14:30:00+00:00"


def test_envelope_csat_and_nps_go_to_the_keys_conversation(post_event: Any) -> None:
    received = post_event(envelope(text="Thanks")).json()
    messages = Message.objects.count()
    for key, value in (("weni_csat", "4"), ("weni_nps", 0)):
        payload = envelope(text="", created_at="", key=key, value=value)
        response = post_event(payload)
        assert response.status_code == 202, response.json()
        assert response.json()["status"] == "recorded"
        assert response.json()["conversation_id"] == received["conversation_id"]
    conversation = Conversation.objects.get(pk=received["conversation_id"])
    assert (conversation.csat, conversation.nps) == (4, 0)
    # The dummy message is ignored: nothing stored.
    assert Message.objects.count() == messages
    # After close, the key's latest conversation takes it.
    services.conversation_close(conversation_id=conversation.pk)
    late = post_event(envelope(text="", created_at="", key="weni_csat", value=5))
    assert late.json()["conversation_id"] == str(conversation.pk)
    assert Conversation.objects.get(pk=conversation.pk).csat == 5


def test_envelope_survey_refusals(post_event: Any) -> None:
    post_event(envelope())
    missing = envelope(text="", key="weni_nps")
    assert post_event(missing).json()["code"] == "invalid_score"
    assert post_event(envelope(text="", key="weni_csat", value="9")).json()["errors"] == {
        "data.value": ["CSAT is an integer from 1 to 5, or a string of those digits."]
    }
    nobody = post_event(envelope(contact_urn="whatsapp:nobody", key="weni_csat", value=3))
    assert nobody.json()["code"] == "conversation_not_found"


def test_a_repeated_envelope_survey_is_a_no_op(post_event: Any) -> None:
    post_event(envelope())
    payload = envelope(text="", key="weni_nps", value=7)
    first = post_event(payload).json()
    assert post_event(payload).json() == first
    assert SurveyResponse.objects.count() == 1
    assert OutboxEvent.objects.filter(type="survey.recorded").count() == 1
