"""What the console shows beyond conversations: panels and actions, each registered by its app.

A capability adds to the console without touching it. In its app's
``console.py`` (imported by the console at start, as the admin imports
``admin.py``) it registers:

* a :class:`Panel`: one template and one query. A ``page`` panel gets its own
  page at ``/console/p/<name>/`` and a link in the navigation; a
  ``conversation`` panel shows in every conversation's thread, its query
  called with the conversation's id. The panel names the outbox event types
  that change it (``watches``), and the live stream re-renders it when one
  of them is written;
* an :class:`Action`: a POST at ``/console/actions/<name>/<target>/``
  (CSRF-protected, staff only) that calls a service. Templates offer it with
  ``{% console_actions scope obj %}``, for the objects it is ``available``
  for.

Both are looked up by name, so a panel's template can offer its app's actions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from django.core.exceptions import ImproperlyConfigured

PanelScope = Literal["page", "conversation"]


@dataclass(frozen=True)
class Panel:
    """One view of the engine's state: a template and the query that feeds it.

    ``query()`` (``query(conversation_id=...)`` for a conversation panel)
    returns what the template shows as ``rows``; it must run a fixed number
    of queries, since the stream calls it again on every change it watches.
    The template must not depend on who looks: one rendering serves every
    open console.
    """

    name: str
    title: str
    template: str
    query: Callable[..., Any]
    # Event types that change what the panel shows: exact names, prefixes
    # ending in "." ("stream." for every stream event), or "*" for all.
    watches: tuple[str, ...] = ()
    scope: PanelScope = "page"
    # Place in the navigation (page panels) or in a thread (conversation panels).
    order: int = 100

    def watches_type(self, event_type: str) -> bool:
        return any(
            w == "*" or w == event_type or (w.endswith(".") and event_type.startswith(w))
            for w in self.watches
        )


@dataclass(frozen=True)
class Action:
    """An operator's action on one object, offered where its ``scope`` is shown.

    ``perform(target=..., user=...)`` runs in a short database transaction of
    its own; ``target`` is the text of the URL (an id: parse and check it),
    and a :class:`parley.core.errors.ParleyError` it raises is shown to the
    operator. It returns a short confirmation, or None.
    """

    name: str
    label: str
    perform: Callable[..., str | None]
    # "conversation", "group" (a reply group), or the name of a panel.
    scope: str
    # Whether the action applies to this object (an OPEN conversation, a FAILED group...).
    available: Callable[[Any], bool] = field(default=lambda obj: True)
    # The object's id in the action's URL.
    target: Callable[[Any], str] = field(default=lambda obj: str(obj.pk))
    # What the button says when it asks for confirmation first; empty: it does not ask.
    confirm: str = ""


_panels: dict[str, Panel] = {}
_actions: dict[str, Action] = {}


def register_panel(panel: Panel) -> Panel:
    if panel.name in _panels and _panels[panel.name] != panel:
        raise ImproperlyConfigured(f"A console panel named {panel.name!r} is already registered.")
    _panels[panel.name] = panel
    return panel


def register_action(action: Action) -> Action:
    if action.name in _actions and _actions[action.name] != action:
        raise ImproperlyConfigured(f"A console action named {action.name!r} is already registered.")
    _actions[action.name] = action
    return action


def unregister(name: str) -> None:
    """Forget a panel or an action (tests)."""
    _panels.pop(name, None)
    _actions.pop(name, None)


def panels(scope: PanelScope) -> list[Panel]:
    return sorted(
        (p for p in _panels.values() if p.scope == scope), key=lambda p: (p.order, p.name)
    )


def panel(name: str) -> Panel | None:
    return _panels.get(name)


def action(name: str) -> Action | None:
    return _actions.get(name)


def actions_for(scope: str, obj: Any) -> list[Action]:
    return [a for a in _actions.values() if a.scope == scope and a.available(obj)]
