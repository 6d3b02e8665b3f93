"""The console's pages through Django's test client: who gets in, what they show (C-1 to C-5)."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from parley.console.selectors import PAGE_SIZE
from parley.console.tests.conftest import MakeConversation
from parley.conversations.models import Conversation, Message, MessageGroup
from parley.outbox.models import OutboxEvent
from parley.tenants.models import Tenant

HOSTILE = [
    "<script>window.__pwned = 1</script>",
    '<img src=x onerror="window.__pwned = 1">',
    '<a href="javascript:window.__pwned = 1">click me</a>',
    "line one\r\n\r\nevent: patch\r\ndata: <img src=x onerror=alert(1)>\r\n\r\n",
    '<div hx-get="/console/logout/" hx-trigger="load">htmx</div>',
]


def html(response: Any) -> str:
    return response.content.decode()


# --- C-1: staff only ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/console/", f"/console/conversations/{uuid.uuid4()}/", "/console/p/events/"]
)
def test_a_visitor_is_sent_to_log_in(db: Any, path: str) -> None:
    response = Client().get(path)

    assert response.status_code == 302
    assert response["Location"] == f"/console/login/?next={path}"


def test_a_user_who_is_not_staff_is_sent_to_log_in_and_told_why(other_client: Client) -> None:
    response = other_client.get("/console/")
    assert response.status_code == 302
    assert response["Location"].startswith("/console/login/")

    login = other_client.get(response["Location"])
    assert login.status_code == 200
    assert "who is not a staff user" in html(login)


def test_the_admin_login_of_a_staff_user_opens_the_console(staff_user: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    page = client.get("/console/login/?next=/console/p/events/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html(page)).group(1)  # type: ignore[union-attr]

    response = client.post(
        "/console/login/",
        {
            "username": "operator",
            "password": "secret-pass-1",
            "next": "/console/p/events/",
            "csrfmiddlewaretoken": token,
        },
    )

    assert response.status_code == 302
    assert response["Location"] == "/console/p/events/"
    assert client.get("/console/").status_code == 200


def test_a_user_who_is_not_staff_cannot_log_in(transactional_db: Any) -> None:
    from django.contrib.auth.models import User

    User.objects.create_user("someone", password="secret-pass-2")
    response = Client().post(
        "/console/login/", {"username": "someone", "password": "secret-pass-2"}
    )

    assert response.status_code == 200
    assert "staff account" in html(response)
    assert "_auth_user_id" not in Client().session


def test_the_session_check_tells_a_logout_from_an_outage(
    staff_client: Client, other_client: Client
) -> None:
    assert staff_client.get("/console/session/").status_code == 204
    assert other_client.get("/console/session/").status_code == 403
    anonymous = Client().get("/console/session/")
    assert anonymous.status_code == 401
    assert anonymous["Content-Type"] == "application/problem+json"
    assert anonymous.json()["code"] == "not_authenticated"


def test_pages_carry_a_content_security_policy_and_are_never_cached(
    staff_client: Client,
) -> None:
    response = staff_client.get("/console/")

    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert "no-store" in response["Cache-Control"]
    assert response["X-Frame-Options"] == "DENY"


def test_the_web_process_does_not_serve_the_console(settings: Any, staff_client: Client) -> None:
    settings.ROOT_URLCONF = "config.urls"
    assert staff_client.get("/console/").status_code == 404


# --- C-2: the list --------------------------------------------------------------------------


def test_the_list_shows_each_conversation_newest_activity_first(
    staff_client: Client, make_conversation: MakeConversation
) -> None:
    older = make_conversation("first words")
    newer = make_conversation("hello there", "second line")
    closed = make_conversation()
    Conversation.objects.filter(pk=closed.pk).update(
        status="CLOSED", close_reason="idle", closed_at=timezone.now()
    )

    response = staff_client.get("/console/")

    assert response.status_code == 200
    page = html(response)
    rows = re.findall(r'<tr id="row-([0-9a-f-]+)"', page)
    assert rows == [str(closed.pk), str(newer.pk), str(older.pk)]
    newer_row = page[page.index(f'id="row-{newer.pk}"') :].split("</tr>")[0]
    assert "second line" in newer_row  # the last message
    assert "2 / 0" in newer_row  # in / out
    assert 'class="countdown" data-due="' in newer_row  # its group is pending
    assert str(newer.tenant) in newer_row  # the tenant
    closed_row = page[page.index(f'id="row-{closed.pk}"') :].split("</tr>")[0]
    assert "Closed" in closed_row
    assert "(Idle)" in closed_row
    assert "countdown" not in closed_row
    assert 'data-stream="/console/events/?view=conversations"' in page


def test_the_filters_and_the_search_are_kept_in_the_url(
    staff_client: Client, make_conversation: MakeConversation
) -> None:
    tenant = Tenant.objects.create(id=uuid.uuid4(), name="Acme Rentals")
    pending = make_conversation("about the apartment", tenant_id=tenant.pk)
    quiet = make_conversation(tenant_id=tenant.pk)
    failed = make_conversation("will fail")
    MessageGroup.objects.filter(conversation=failed).update(
        status="FAILED", reply_due_at=None, last_error="writer down", failed_at=timezone.now()
    )
    closed = make_conversation()
    Conversation.objects.filter(pk=closed.pk).update(
        status="CLOSED", close_reason="manual", closed_at=timezone.now()
    )

    def shown(query: str) -> set[str]:
        response = staff_client.get(f"/console/?{query}")
        assert response.status_code == 200
        return set(re.findall(r'<tr id="row-([0-9a-f-]+)"', html(response)))

    assert shown("pending=yes") == {str(pending.pk)}
    assert shown("pending=no") == {str(quiet.pk), str(failed.pk), str(closed.pk)}
    assert shown("status=CLOSED") == {str(closed.pk)}
    assert shown("status=OPEN&pending=no") == {str(quiet.pk), str(failed.pk)}
    assert shown(f"tenant={tenant.pk}") == {str(pending.pk), str(quiet.pk)}
    assert shown("failed=1") == {str(failed.pk)}
    assert shown("q=apartment") == {str(pending.pk)}
    assert shown("q=acme") == {str(pending.pk), str(quiet.pk)}
    assert shown(f"q={str(quiet.pk)[:8]}") == {str(quiet.pk)}
    message = Message.objects.get(conversation=pending)
    assert shown(f"q={message.pk}") == {str(pending.pk)}
    # Nonsense is ignored, never an error.
    assert len(shown("status=MAYBE&pending=perhaps&tenant=nope&page=-3")) == 4

    page = html(staff_client.get(f"/console/?tenant={tenant.pk}&q=apartment"))
    assert f"view=conversations&amp;tenant={tenant.pk}&amp;q=apartment" in page  # the stream too
    assert f'<option value="{tenant.pk}" selected>Acme Rentals</option>' in page


def test_the_list_has_fifty_conversations_a_page(
    staff_client: Client, transactional_db: Any
) -> None:
    now = timezone.now()
    Tenant.objects.get_or_create(id=uuid.UUID(int=0))
    Conversation.objects.bulk_create(
        Conversation(
            id=uuid.uuid4(),
            tenant_id=uuid.UUID(int=0),
            created_at=now,
            updated_at=now - timedelta(seconds=i),
        )
        for i in range(PAGE_SIZE + 5)
    )

    first = html(staff_client.get("/console/"))
    second = html(staff_client.get("/console/?page=2"))

    assert len(re.findall(r'<tr id="row-', first)) == PAGE_SIZE
    assert len(re.findall(r'<tr id="row-', second)) == 5
    assert 'href="?page=2" rel="next"' in first
    assert 'rel="prev"' in second
    assert 'rel="next"' not in second


# --- C-3: a conversation -----------------------------------------------------------------------


def test_a_thread_shows_messages_in_r1_order_and_each_pending_group_with_its_due_time(
    staff_client: Client, make_conversation: MakeConversation
) -> None:
    conversation = make_conversation("one", "two")
    late = Message.objects.filter(conversation=conversation, content="two").get()
    # "two" carries an earlier event timestamp: R-1 puts it first.
    Message.objects.filter(pk=late.pk).update(timestamp=timezone.now() - timedelta(days=1))
    group = MessageGroup.objects.get(conversation=conversation)

    response = staff_client.get(f"/console/conversations/{conversation.pk}/")

    assert response.status_code == 200
    page = html(response)
    contents = re.findall(r'<p class="content user-text" hx-disable>([^<]*)</p>', page)
    assert contents == ["two", "one"]
    card = page[page.index(f'id="group-{group.pk}"') :].split("</article>")[0]
    assert f'data-due="{round(group.reply_due_at.timestamp() * 1000)}"' in card  # type: ignore[union-attr]
    assert "Close conversation" in page  # the action of an OPEN conversation
    assert f"view=conversation&amp;id={conversation.pk}" in page


def test_a_thread_shows_the_reply_failure_the_survey_the_close_and_the_archive(
    staff_client: Client, make_conversation: MakeConversation
) -> None:
    conversation = make_conversation("hello")
    now = timezone.now()
    MessageGroup.objects.filter(conversation=conversation).update(
        status="FAILED",
        reply_due_at=None,
        reply_attempts=5,
        last_error="<b>LLM timeout</b>",
        failed_at=now,
    )
    Conversation.objects.filter(pk=conversation.pk).update(
        status="CLOSED",
        close_reason="scheduled",
        closed_at=now,
        csat=4,
        nps=9,
        archived_at=now,
        transcript_sha256="ab" * 32,
    )

    page = html(staff_client.get(f"/console/conversations/{conversation.pk}/"))

    assert "failed</strong> after 5 attempts" in page
    assert "&lt;b&gt;LLM timeout&lt;/b&gt;" in page
    assert "Scheduled close at" in page
    assert "CSAT 4/5, NPS 9/10" in page
    assert "ab" * 32 in page
    assert "Close conversation" not in page  # closed already


def test_an_unknown_conversation_or_panel_is_a_404_page(staff_client: Client) -> None:
    response = staff_client.get(f"/console/conversations/{uuid.uuid4()}/")
    assert response.status_code == 404
    assert "Not found" in html(response)
    assert staff_client.get("/console/p/nothing-here/").status_code == 404


def test_the_built_in_panels_show_tenants_and_the_latest_events(
    staff_client: Client, make_conversation: MakeConversation
) -> None:
    make_conversation("hi")

    tenants = html(staff_client.get("/console/p/tenants/"))
    events = html(staff_client.get("/console/p/events/"))

    assert 'id="panel-tenants"' in tenants
    assert "<td>UTC</td>" in tenants
    assert "message.received" in events
    assert "conversation.opened" in events
    assert 'data-stream="/console/events/?view=panel&amp;name=events"' in events


# --- C-5: hostile content ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/console/", "/console/conversations/{id}/"])
def test_every_user_text_is_escaped_and_inert(
    staff_client: Client, make_conversation: MakeConversation, path: str
) -> None:
    conversation = make_conversation(*HOSTILE)
    if "{id}" not in path:
        # The list shows the last message only: one conversation per text.
        for text in HOSTILE[:-1]:
            make_conversation(text)

    page = html(staff_client.get(path.format(id=conversation.pk)))

    assert "<script>window" not in page
    assert "<img src=x" not in page
    assert '<a href="javascript:' not in page
    assert '<div hx-get="/console/logout/"' not in page
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page
    # Every user text sits in an element htmx leaves alone.
    for match in re.finditer(r"&lt;(script|img|a |div)", page):
        opening = page.rfind("<", 0, match.start())
        assert "hx-disable" in page[page.rfind("<p", 0, opening) : match.start()] or (
            "hx-disable" in page[page.rfind("<span", 0, opening) : match.start()]
        )


# --- actions (C-5) --------------------------------------------------------------------------------


def test_closing_a_conversation_is_a_csrf_checked_post(
    staff_user: Any, make_conversation: MakeConversation
) -> None:
    conversation = make_conversation("please close")
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    url = f"/console/actions/conversation_close/{conversation.pk}/"

    assert client.post(url).status_code == 403  # no token
    assert client.get(url).status_code == 405
    page = html(client.get(f"/console/conversations/{conversation.pk}/"))
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)  # type: ignore[union-attr]
    response = client.post(url, HTTP_X_CSRFTOKEN=token, HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    assert "Conversation closed." in html(response)
    conversation.refresh_from_db()
    assert (conversation.status, conversation.close_reason) == ("CLOSED", "manual")
    # Its pending group is answered at once (G-5), and the fact is in the outbox.
    assert MessageGroup.objects.get(conversation=conversation).status != "OPEN"
    assert OutboxEvent.objects.filter(
        type="conversation.closed", subject=str(conversation.pk)
    ).exists()

    again = client.post(url, HTTP_X_CSRFTOKEN=token, HTTP_HX_REQUEST="true")
    assert again.status_code == 200
    assert 'role="alert"' in html(again)
    assert "already closed" in html(again)


def test_an_action_without_htmx_redirects_back_with_a_message(
    staff_client: Client, make_conversation: MakeConversation
) -> None:
    conversation = make_conversation()
    back = f"/console/conversations/{conversation.pk}/"

    response = staff_client.post(
        f"/console/actions/conversation_close/{conversation.pk}/", {"next": back}
    )

    assert response.status_code == 303
    assert response["Location"] == back
    assert "Conversation closed." in html(staff_client.get(back))
    evil = staff_client.post(
        f"/console/actions/conversation_close/{uuid.uuid4()}/", {"next": "https://evil.example/"}
    )
    assert evil["Location"] == "/console/"


def test_only_staff_may_act(other_client: Client, make_conversation: MakeConversation) -> None:
    conversation = make_conversation()

    response = other_client.post(f"/console/actions/conversation_close/{conversation.pk}/")
    htmx = other_client.post(
        f"/console/actions/conversation_close/{conversation.pk}/", HTTP_HX_REQUEST="true"
    )

    assert response.status_code == 302
    assert response["Location"].startswith("/console/login/")
    assert htmx["HX-Redirect"] == "/console/login/"
    conversation.refresh_from_db()
    assert conversation.status == "OPEN"


def test_an_unknown_action_is_a_404(staff_client: Client) -> None:
    response = staff_client.post(f"/console/actions/nothing/{uuid.uuid4()}/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
