"""What a tenant's settings may hold (Q-1, T-1, T-2): the one place that checks them.

The API (``PUT /tenants/{id}/``) and the admin's form both call these, so a
value the API refuses cannot slip in through the admin, nor the reverse.
Each function takes what a client sent and returns the value to store, or
raises :class:`InvalidTimeZone` (400 ``invalid_time_zone``: never a silent
fallback) or :class:`InvalidPayload` (400 ``invalid_payload``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from parley.core.errors import InvalidPayload, InvalidTimeZone

NAME_MAX_LENGTH = 200
_HH_MM = re.compile(r"^(?P<hour>[01][0-9]|2[0-3]):(?P<minute>[0-5][0-9])$")
# The fields a client may set; anything else in the body is ignored, as W-1 does.
FIELDS = ("name", "time_zone", "idle_close_after", "daily_close_at")


def _invalid(field: str, message: str) -> InvalidPayload:
    return InvalidPayload("The payload failed validation.", errors={field: [message]})


def clean_time_zone(value: Any) -> str:
    """An IANA zone name that ``zoneinfo`` knows, else ``invalid_time_zone``."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidTimeZone(
            "time_zone must be an IANA time zone name such as America/Sao_Paulo.",
            errors={"time_zone": ["Must be a non-empty IANA time zone name."]},
        )
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        message = f"{value!r} is not an IANA time zone (for example America/Sao_Paulo)."
        raise InvalidTimeZone(message, errors={"time_zone": [message]}) from exc
    return value


def clean_idle_close_after(value: Any) -> int | None:
    """Whole seconds, at least 1, or None (off)."""
    if value is None:
        return None
    # bool is an int in Python; true is not a number of seconds.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid("idle_close_after", "Must be a whole number of seconds, or null.")
    if value < 1:
        raise _invalid("idle_close_after", "Must be at least 1 second, or null to turn it off.")
    if value > 2**31 - 1:
        raise _invalid("idle_close_after", "Must be at most 2147483647 seconds.")
    return value


def clean_daily_close_at(value: Any) -> time | None:
    """A local time ``HH:MM`` (00:00 to 23:59), or None (off)."""
    if value is None:
        return None
    if isinstance(value, time):  # the admin's form field already parsed it
        if value.second or value.microsecond:
            raise _invalid("daily_close_at", "Must be a whole minute, HH:MM.")
        return value
    match = _HH_MM.match(value) if isinstance(value, str) else None
    if match is None:
        raise _invalid("daily_close_at", "Must be a local time HH:MM (00:00 to 23:59), or null.")
    return time(int(match["hour"]), int(match["minute"]))


def clean_name(value: Any) -> str:
    if not isinstance(value, str):
        raise _invalid("name", "Must be a string.")
    if len(value) > NAME_MAX_LENGTH:
        raise _invalid("name", f"Must be at most {NAME_MAX_LENGTH} characters.")
    if "\x00" in value:
        raise _invalid("name", "Must not contain NUL characters.")
    return value


_CLEANERS = {
    "name": clean_name,
    "time_zone": clean_time_zone,
    "idle_close_after": clean_idle_close_after,
    "daily_close_at": clean_daily_close_at,
}


def clean_tenant_fields(given: Mapping[str, Any]) -> dict[str, Any]:
    """The settable fields present in ``given``, each checked; the first bad one raises.

    A bad time zone is reported as ``invalid_time_zone`` even beside other
    errors, since a client must be able to tell it apart (Q-1).
    """
    cleaned: dict[str, Any] = {}
    for field in FIELDS:
        if field in given:
            cleaned[field] = _CLEANERS[field](given[field])
    return cleaned
