"""Survey answers (Q-3): CSAT 1 to 5, NPS 0 to 10, one row per answer event.

The latest answer of each kind is copied onto ``Conversation.csat`` /
``Conversation.nps`` (the T-3 representation); the rows keep every answer.
``event_id`` is unique, so a repeated event records nothing (the seed kept
its processed ids in a Python list; a redelivery doubled the datalake row).
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone


class SurveyResponse(models.Model):
    class Kind(models.TextChoices):
        CSAT = "CSAT"
        NPS = "NPS"

    id = models.UUIDField(primary_key=True)
    # The event's id: ``SURVEY_RESPONSE:<data.id>``, or the envelope's correlation_id.
    event_id = models.CharField(max_length=300, unique=True)
    conversation = models.ForeignKey(
        "conversations.Conversation", on_delete=models.CASCADE, related_name="survey_responses"
    )
    kind = models.CharField(max_length=4, choices=Kind.choices)
    score = models.PositiveSmallIntegerField()
    # When the person answered (the event's time); the newest answer wins.
    responded_at = models.DateTimeField()
    recorded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(kind="CSAT", score__gte=1, score__lte=5)
                | Q(kind="NPS", score__gte=0, score__lte=10),
                name="survey_score_in_range",
            ),
        ]
        indexes = [
            # Serves "the latest answer of this kind": WHERE conversation_id = %s
            # AND kind = %s ORDER BY responded_at DESC, recorded_at DESC LIMIT 1.
            models.Index(
                fields=["conversation", "kind", "-responded_at", "-recorded_at"],
                name="survey_latest_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.score} on {self.conversation_id}"
