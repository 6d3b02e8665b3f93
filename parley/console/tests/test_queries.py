"""A fixed number of queries, however much there is (C-2, R-3): the stream runs them often."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import RequestFactory
from django.utils import timezone

from parley.console import screens, selectors, views
from parley.console.selectors import ListFilters
from parley.conversations.models import Conversation, Message, MessageGroup
from parley.tenants.models import Tenant

pytestmark = pytest.mark.django_db


def populate(conversations: int, messages_each: int = 2) -> list[Conversation]:
    """Conversations with messages, each with a group: pending, replied or failed."""
    now = timezone.now()
    tenant, _ = Tenant.objects.get_or_create(id=uuid.UUID(int=0))
    made = Conversation.objects.bulk_create(
        Conversation(id=uuid.uuid4(), tenant=tenant, updated_at=now - timedelta(seconds=n))
        for n in range(conversations)
    )
    statuses = ["OPEN", "REPLIED", "FAILED"]
    groups = MessageGroup.objects.bulk_create(
        MessageGroup(
            conversation=c,
            status=statuses[n % 3],
            opened_at=now,
            last_message_at=now,
            reply_due_at=now + timedelta(seconds=5) if n % 3 == 0 else None,
            last_error="boom" if n % 3 == 2 else None,
        )
        for n, c in enumerate(made)
    )
    Message.objects.bulk_create(
        Message(
            id=uuid.uuid4(),
            conversation=c,
            type="INBOUND",
            content=f"message {i} of {c.pk}",
            timestamp=now + timedelta(milliseconds=i),
            group=g,
        )
        for c, g in zip(made, groups, strict=True)
        for i in range(messages_each)
    )
    return made


@pytest.mark.parametrize("conversations", [3, 1_050])
def test_a_page_of_the_list_takes_one_query_however_many_conversations(
    conversations: int, django_assert_num_queries: Any
) -> None:
    populate(conversations)

    with django_assert_num_queries(1):
        page = selectors.conversation_page(ListFilters())
    with django_assert_num_queries(1):
        html = screens.ConversationList(ListFilters(pending="yes", q="message")).render_fragments()

    assert len(page.rows) == min(conversations, selectors.PAGE_SIZE)
    assert page.has_next == (conversations > selectors.PAGE_SIZE)
    assert all(r.inbound == 2 for r in page.rows)
    assert all(r.last_type == "INBOUND" for r in page.rows)
    assert all(r.last_snippet.startswith("message 1 of") for r in page.rows)
    assert [r.failed for r in page.rows[:3]] == [0, 0, 1]
    assert [r.pending_status for r in page.rows[:3]] == ["OPEN", "", ""]
    assert html.count('class="countdown"') == min((conversations + 2) // 3, selectors.PAGE_SIZE)


def test_an_empty_page_takes_one_query(django_assert_num_queries: Any) -> None:
    with django_assert_num_queries(1):
        page = selectors.conversation_page(ListFilters(status="CLOSED"))
    assert page.rows == []
    assert not page.has_next


def test_the_whole_list_page_takes_three_queries(django_assert_num_queries: Any) -> None:
    populate(1_050)
    request = RequestFactory().get("/console/")
    request.user = User(username="operator", is_staff=True, is_active=True)

    # The position, the list, the tenants of the filter.
    with django_assert_num_queries(3):
        status, html = views._render_page(request, screens.ConversationList(ListFilters()))  # type: ignore[misc]

    assert status == 200
    assert html.count('<tr id="row-') == selectors.PAGE_SIZE


@pytest.mark.parametrize(
    "filters",
    [ListFilters(), ListFilters(pending="yes"), ListFilters(status="OPEN", q="of", page=2)],
)
def test_the_compiled_list_gives_the_rows_of_the_queryset(filters: ListFilters) -> None:
    """On PostgreSQL the page runs SQL compiled once; it must read what the ORM reads."""
    populate(120)

    page = selectors.conversation_page(filters)

    expected = list(selectors.page_queryset(filters))[: selectors.PAGE_SIZE]
    assert [(r.id, r.inbound, r.failed, r.pending_due) for r in page.rows] == [
        (e[0], e[6], e[12], e[11]) for e in expected
    ]
    assert page.rows


@pytest.mark.parametrize("messages", [1, 300])
def test_a_thread_takes_four_queries_however_many_messages(
    messages: int, django_assert_num_queries: Any, settings: Any
) -> None:
    settings.CONSOLE_THREAD_MESSAGES = 200
    (conversation,) = populate(1, messages_each=messages)

    with django_assert_num_queries(4):
        html = screens.ConversationDetail(conversation.pk).render_fragments()

    assert html.count('class="message"') == min(messages, 200)
    assert ("Only the latest 200 messages are shown" in html) == (messages > 200)
    # The latest ones, in R-1 order.
    assert f"message {messages - 1} of" in html
