"""Template helpers of the console: times for the countdowns, and the registered actions."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from django import template

from parley.console import registry

register = template.Library()


@register.filter
def epoch_ms(moment: datetime | None) -> str:
    """Milliseconds since the epoch: what the countdowns compare with the server's clock."""
    return "" if moment is None else str(round(moment.timestamp() * 1000))


@register.filter
def utc(moment: datetime | None) -> str:
    """A readable UTC time, to the second."""
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


@register.filter
def iso(moment: datetime | None) -> str:
    """ISO 8601 in UTC with a Z, as the API writes times."""
    if moment is None:
        return ""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@register.simple_tag
def remaining(due: datetime | None, now: datetime) -> str:
    """The countdown's text as the page is rendered; the page's script takes over from there."""
    if due is None:
        return ""
    return seconds_text((due - now).total_seconds())


def seconds_text(seconds: float) -> str:
    """As the page's script writes it (console.js, ``secondsText``)."""
    if seconds <= 0:
        return "due now"
    if seconds < 60:
        return f"in {seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"in {minutes}:{secs:02d} min"
    return f"in {minutes // 60} h {minutes % 60} min"


@register.filter
def short_id(value: Any) -> str:
    return str(value)[:8]


@register.inclusion_tag("console/includes/actions.html")
def console_actions(scope: str, obj: Any) -> dict[str, Any]:
    """The buttons of the actions registered for ``scope`` that apply to ``obj``."""
    return {
        "actions": [(action, action.target(obj)) for action in registry.actions_for(scope, obj)]
    }


@register.filter
def query_for_page(filters: Any, step: int) -> str:
    """The list's URL query for the page ``step`` pages away, filters kept."""
    return str(filters.query_string(page=max(1, filters.page + int(step))))


@register.filter
def json_text(value: Any) -> str:
    """Compact JSON, for display (autoescaped by the template like any text)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


@register.filter
def as_uuid(value: Any) -> UUID | None:
    """The value as a UUID, or None (event data written by other code may hold anything)."""
    try:
        return UUID(str(value))
    except ValueError:
        return None
