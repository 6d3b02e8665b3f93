"""Dead letters in the admin: listed, filtered by code, re-driven by an action (Q-7)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from parley.conversations.models import Conversation
from parley.intake.models import DeadLetter
from parley.intake.services import batch_apply, incoming
from parley.surveys.models import SurveyResponse
from tests.payloads import close_conversation, new_conversation, survey

pytestmark = pytest.mark.django_db

URL = "/admin/intake/deadletter/"


def test_dead_letters_are_listed_filtered_and_redriven(admin_client: Any) -> None:
    conversation_id = uuid.uuid4()
    batch_apply(
        [
            incoming(json.dumps(close_conversation(conversation_id)), source="amqp"),
            incoming(b"{oops", source="amqp"),
        ]
    )
    letter = DeadLetter.objects.get(code="conversation_not_found")
    listed = admin_client.get(URL, {"code": "conversation_not_found"})
    assert listed.status_code == 200
    assert f"/admin/intake/deadletter/{letter.pk}/change/" in listed.content.decode()
    other = DeadLetter.objects.get(code="invalid_json")
    assert f"/admin/intake/deadletter/{other.pk}/change/" not in listed.content.decode()
    assert admin_client.get(f"{URL}{letter.pk}/change/").status_code == 200
    batch_apply([incoming(json.dumps(new_conversation(conversation_id)), source="amqp")])
    response = admin_client.post(
        URL, {"action": "redrive", "_selected_action": [letter.pk]}, follow=True
    )
    assert response.status_code == 200
    assert "Re-driven: 1 applied." in response.content.decode()
    assert Conversation.objects.get(pk=conversation_id).status == "CLOSED"


def test_survey_answers_are_in_the_admin(admin_client: Any, post_event: Any) -> None:
    conversation_id = uuid.uuid4()
    post_event(new_conversation(conversation_id))
    post_event(survey(conversation_id, "NPS", 0))
    answer = SurveyResponse.objects.get()
    listed = admin_client.get("/admin/surveys/surveyresponse/", {"kind__exact": "NPS"})
    assert listed.status_code == 200
    assert str(answer.pk) in listed.content.decode()
