"""What a score may be (Q-3): pure functions."""

from __future__ import annotations

import re
from typing import Any

from parley.core.errors import InvalidScore

SCORE_RANGES = {"CSAT": (1, 5), "NPS": (0, 10)}
# The seed envelope's keys, and the kind each one records.
SURVEY_KEYS = {"weni_csat": "CSAT", "weni_nps": "NPS"}
KEY_OF_KIND = {kind: key for key, kind in SURVEY_KEYS.items()}
_DIGITS = re.compile(r"^\s*([0-9]{1,3})\s*$")


def score_clean(*, kind: str, raw: Any, field: str) -> int:
    """The score as an int, or ``invalid_score``.

    An int, or a string of digits (the seed's producer sends ``str(value)``);
    0 is a score (the seed dropped it). Booleans, floats, blanks, a missing
    value and anything out of the kind's range are refused.
    """
    low, high = SCORE_RANGES[kind]
    expected = f"{kind} is an integer from {low} to {high}, or a string of those digits."
    if raw is None:
        raise InvalidScore(f"The score is missing. {expected}", errors={field: ["Required."]})
    value: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str) and (match := _DIGITS.match(raw)):
        value = int(match.group(1))
    if value is None or not low <= value <= high:
        raise InvalidScore(f"{raw!r} is not a valid score. {expected}", errors={field: [expected]})
    return value
