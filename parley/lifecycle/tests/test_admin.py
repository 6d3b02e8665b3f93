"""The admin shows daily closes, and conversations' close reasons and archive fields."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time
from typing import Any

import pytest
import time_machine

from parley.conversations import services as conversation_services
from parley.conversations.models import Conversation
from parley.lifecycle import services
from parley.tenants.models import Tenant

pytestmark = pytest.mark.django_db


def test_daily_closes_are_listed_read_only(
    admin_client: Any, make_tenant: Callable[..., Tenant]
) -> None:
    tenant = make_tenant(zone="America/New_York", daily=time(2, 30))
    with time_machine.travel(datetime(2026, 3, 8, 5, 0, tzinfo=UTC), tick=False):
        services.daily_closes_plan()

    listing = admin_client.get("/admin/lifecycle/scheduledclose/")

    assert listing.status_code == 200
    page = listing.content.decode()
    assert str(tenant.pk) in page
    assert "America/New_York" in page
    assert "PENDING" in page
    assert admin_client.get("/admin/lifecycle/scheduledclose/add/").status_code == 403


def test_a_conversation_shows_why_it_closed_and_its_archive(
    admin_client: Any, make_tenant: Callable[..., Tenant], open_conversation: Any, objects: Any
) -> None:
    conversation_id = open_conversation(make_tenant())
    conversation_services.conversation_close(conversation_id=conversation_id)
    services.transcripts_archive_sweep()

    listing = admin_client.get("/admin/conversations/conversation/", {"close_reason": "manual"})
    page = admin_client.get(f"/admin/conversations/conversation/{conversation_id}/change/")

    assert str(conversation_id) in listing.content.decode()
    assert page.status_code == 200
    body = page.content.decode()
    conversation = Conversation.objects.get(pk=conversation_id)
    assert conversation.transcript_sha256 is not None
    assert conversation.transcript_sha256 in body
    assert "Close reason" in body
    assert "Manual" in body


def test_export_batches_are_listed(admin_client: Any) -> None:
    assert admin_client.get("/admin/analytics/exportbatch/").status_code == 200
