"""Intake reads."""

from __future__ import annotations

from django.db.models import QuerySet

from parley.intake.models import DeadLetter


def dead_letters(*, code: str | None = None) -> QuerySet[DeadLetter]:
    """Newest first (index ``deadletter_newest_idx``, or ``deadletter_code_idx`` with a code)."""
    letters = DeadLetter.objects.order_by("-received_at", "-id")
    if code:
        letters = letters.filter(code=code)
    return letters
