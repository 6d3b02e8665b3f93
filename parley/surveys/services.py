"""Recording a survey answer (Q-3), and its ``survey.recorded`` outbox event (T-4)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import structlog
from django.db import IntegrityError, transaction
from django.utils import timezone
from structlog.contextvars import bind_contextvars

from parley.conversations.models import Conversation
from parley.core.errors import ConversationNotFound
from parley.outbox.services import event_append, iso
from parley.surveys.models import SurveyResponse
from parley.surveys.rules import KEY_OF_KIND, score_clean

log = structlog.get_logger(__name__)

SURVEY_RECORDED = "survey.recorded"


@dataclass(frozen=True)
class Recorded:
    id: UUID
    conversation_id: UUID
    replay: bool = False


def survey_record(
    *,
    survey_id: UUID,
    event_id: str,
    conversation_id: UUID,
    kind: str,
    raw_score: Any,
    responded_at: datetime | None,
    score_field: str = "data.score",
) -> Recorded:
    """Record an answer; the conversation's score becomes that of its newest answer.

    1. The score is checked first: a bad one is ``invalid_score`` (400, or a
       dead letter), never dropped.
    2. A known ``event_id`` is a replay: nothing is recorded or exported.
    3. Under the conversation's row lock: insert the answer, set the
       conversation's ``csat``/``nps`` from the newest answer of that kind
       (by the time the person answered, so a late redelivery of an older
       answer does not win), append ``survey.recorded``. A CLOSED
       conversation records it too.
    """
    score = score_clean(kind=kind, raw=raw_score, field=score_field)
    bind_contextvars(conversation_id=str(conversation_id))
    try:
        with transaction.atomic():
            replay = _replay_of(event_id)
            if replay is not None:
                return replay
            now = timezone.now()
            conversation = (
                Conversation.objects.select_for_update().filter(pk=conversation_id).first()
            )
            if conversation is None:
                raise ConversationNotFound(f"Conversation {conversation_id} does not exist.")
            SurveyResponse.objects.create(
                id=survey_id,
                event_id=event_id,
                conversation=conversation,
                kind=kind,
                score=score,
                responded_at=responded_at or now,
                recorded_at=now,
            )
            latest = (
                SurveyResponse.objects.filter(conversation=conversation, kind=kind)
                .order_by("-responded_at", "-recorded_at")
                .values_list("score", flat=True)
                .first()
            )
            field = "csat" if kind == SurveyResponse.Kind.CSAT else "nps"
            Conversation.objects.filter(pk=conversation_id).update(**{field: latest})
            _append_recorded(conversation, survey_id, kind, score, responded_at or now, now)
    except IntegrityError:
        # The event id, or the answer's id, was recorded concurrently.
        replay = _replay_of(event_id)
        if replay is None:
            raise
        return replay
    log.info("survey_recorded", kind=kind, score=score)
    return Recorded(survey_id, conversation_id)


def _replay_of(event_id: str) -> Recorded | None:
    known = SurveyResponse.objects.filter(event_id=event_id).values("id", "conversation_id")
    row = known.first()
    return None if row is None else Recorded(row["id"], row["conversation_id"], replay=True)


def _append_recorded(
    conversation: Conversation,
    survey_id: UUID,
    kind: str,
    score: int,
    responded_at: datetime,
    now: datetime,
) -> None:
    """The seed's datalake fields (key, value, conversation start and end), with ids."""
    event_append(
        type=SURVEY_RECORDED,
        occurred_at=responded_at,
        tenant_id=conversation.tenant_id,
        subject=conversation.pk,
        data={
            "survey_id": str(survey_id),
            "conversation_id": str(conversation.pk),
            "kind": kind,
            "key": KEY_OF_KIND[kind],
            "value": score,
            "responded_at": iso(responded_at),
            "recorded_at": iso(now),
            "contact_urn": conversation.contact_urn,
            "channel_uuid": conversation.channel_uuid,
            "conversation_start": iso(conversation.created_at),
            "conversation_end": iso(conversation.closed_at) if conversation.closed_at else None,
        },
    )
