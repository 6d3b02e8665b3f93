"""Extension points: a panel is one template and one query; an action is one function."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from parley.console import registry
from parley.console.tests.conftest import MakeConversation
from parley.console.tests.test_stream import panel_patch_when_a_conversation_opens
from parley.conversations.models import MessageGroup

TEMPLATES = Path(__file__).parent / "templates"
collectors: dict[str, int] = {}
redriven: list[str] = []


def redrive(*, target: str, user: Any) -> str:
    redriven.append(target)
    return "Re-driven."


@pytest.fixture(autouse=True)
def _extensions(settings: Any) -> Iterator[None]:
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [TEMPLATES]}]
    made: list[registry.Panel | registry.Action] = [
        registry.register_panel(
            registry.Panel(
                name="t-collectors",
                title="Collectors",
                template="tests/collectors.html",
                query=lambda: sorted(collectors.items()),
                watches=("conversation.opened",),
            )
        ),
        registry.register_panel(
            registry.Panel(
                name="t-notes",
                title="Notes",
                template="tests/notes.html",
                query=lambda conversation_id: [f"note of {conversation_id}", "<b>bold</b>"],
                scope="conversation",
            )
        ),
        registry.register_action(
            registry.Action(
                name="t_redrive",
                label="Re-drive",
                perform=redrive,
                scope="t-collector",
                target=str,
            )
        ),
        registry.register_action(
            registry.Action(
                name="t_group_retry",
                label="Retry the reply",
                perform=lambda target, user: f"Retrying group {int(target)}.",
                scope="group",
                available=lambda group: group.status == "FAILED",
            )
        ),
    ]
    collectors.clear()
    collectors.update({"12345678": 2})
    redriven.clear()
    yield
    for thing in made:
        registry.unregister(thing.name)


def test_a_page_panel_gets_a_page_a_link_and_its_actions(staff_client: Client) -> None:
    page = staff_client.get("/console/p/t-collectors/").content.decode()

    assert '<a href="/console/p/t-collectors/" aria-current="page">Collectors</a>' in page
    assert '<li id="collector-12345678">12345678: 2 open' in page
    assert 'hx-post="/console/actions/t_redrive/12345678/"' in page
    assert (
        '<a href="/console/p/t-collectors/">Collectors</a>'
        in staff_client.get("/console/").content.decode()
    )

    response = staff_client.post("/console/actions/t_redrive/12345678/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "Re-driven." in response.content.decode()
    assert redriven == ["12345678"]


def test_a_page_panel_is_streamed_when_an_event_it_watches_is_written(
    staff_client: Client,
) -> None:
    collectors["87654321"] = 1  # read when the panel renders again, after the event

    data = panel_patch_when_a_conversation_opens(staff_client, "t-collectors")

    assert 'id="panel-t-collectors"' in data
    assert "87654321: 1 open" in data


def test_a_conversation_panel_shows_in_every_thread_and_a_group_action_on_failed_groups(
    staff_client: Client, make_conversation: MakeConversation
) -> None:
    conversation = make_conversation("hello")
    group = MessageGroup.objects.get(conversation=conversation)

    pending = staff_client.get(f"/console/conversations/{conversation.pk}/").content.decode()
    MessageGroup.objects.filter(pk=group.pk).update(status="FAILED", reply_due_at=None)
    failed = staff_client.get(f"/console/conversations/{conversation.pk}/").content.decode()

    assert f"note of {conversation.pk}" in pending
    assert "&lt;b&gt;bold&lt;/b&gt;" in pending
    assert '<h2 id="panel-t-notes-title">Notes</h2>' in pending
    assert "t_group_retry" not in pending
    assert f'hx-post="/console/actions/t_group_retry/{group.pk}/"' in failed
    response = staff_client.post(
        f"/console/actions/t_group_retry/{group.pk}/", HTTP_HX_REQUEST="true"
    )
    assert f"Retrying group {group.pk}." in response.content.decode()


def test_a_name_is_registered_once() -> None:
    with pytest.raises(ImproperlyConfigured, match="t-notes"):
        registry.register_panel(
            registry.Panel(name="t-notes", title="Other", template="x.html", query=list)
        )
    with pytest.raises(ImproperlyConfigured, match="t_redrive"):
        registry.register_action(
            registry.Action(name="t_redrive", label="Other", perform=print, scope="x")
        )
    # The navigation: by order, then name (tenants 10, events 90, others 100).
    assert [p.name for p in registry.panels("page")] == ["tenants", "events", "t-collectors"]
    assert [p.name for p in registry.panels("conversation")] == ["t-notes"]
