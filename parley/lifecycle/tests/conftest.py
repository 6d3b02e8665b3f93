"""Tenants and conversations for the lifecycle tests, made through the services."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import time

import pytest
from django.utils import timezone

from parley.conversations import services
from parley.tenants.models import Tenant
from parley.tenants.services import tenant_ensure


@pytest.fixture
def make_tenant() -> Callable[..., Tenant]:
    def make(*, zone: str = "UTC", idle: int | None = None, daily: time | None = None) -> Tenant:
        tenant_id = tenant_ensure(tenant_id=uuid.uuid4())
        Tenant.objects.filter(pk=tenant_id).update(
            time_zone=zone, idle_close_after=idle, daily_close_at=daily
        )
        return Tenant.objects.get(pk=tenant_id)

    return make


@pytest.fixture
def open_conversation() -> Callable[..., uuid.UUID]:
    def open_(tenant: Tenant) -> uuid.UUID:
        conversation_id = uuid.uuid4()
        services.conversation_open(conversation_id=conversation_id, tenant_id=tenant.pk)
        return conversation_id

    return open_


@pytest.fixture
def send_message() -> Callable[..., uuid.UUID]:
    def send(conversation_id: uuid.UUID, content: str = "hello") -> uuid.UUID:
        message_id = uuid.uuid4()
        services.message_ingest(
            message_id=message_id,
            conversation_id=conversation_id,
            content=content,
            timestamp=timezone.now(),
        )
        return message_id

    return send
