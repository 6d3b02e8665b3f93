"""Fixtures of the console's tests: staff and other users, conversations made by the services."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from parley.console.feed import Feed, feed
from parley.conversations import services
from parley.conversations.models import Conversation


@pytest.fixture(autouse=True)
def _live_urls(settings: Any) -> None:
    """The console lives in the live process: its URLs are there only."""
    settings.ROOT_URLCONF = "config.urls_live"
    # A second of key stretching per test user buys these tests nothing.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_feed() -> Iterator[None]:
    """The process-wide feed, as a new process has it (each test runs its own event loop)."""
    Feed.__init__(feed)
    yield
    Feed.__init__(feed)


@pytest.fixture
def staff_user(transactional_db: Any) -> User:
    return User.objects.create_user("operator", password="secret-pass-1", is_staff=True)


@pytest.fixture
def staff_client(staff_user: User) -> Client:
    client = Client()
    client.force_login(staff_user)
    return client


@pytest.fixture
def other_client(transactional_db: Any) -> Client:
    user = User.objects.create_user("someone", password="secret-pass-2", is_staff=False)
    client = Client()
    client.force_login(user)
    return client


MakeConversation = Callable[..., Conversation]


@pytest.fixture
def make_conversation(transactional_db: Any) -> MakeConversation:
    """A conversation opened by the service, with INBOUND messages of these contents."""

    def make(*contents: str, tenant_id: uuid.UUID | None = None) -> Conversation:
        conversation_id = uuid.uuid4()
        services.conversation_open(conversation_id=conversation_id, tenant_id=tenant_id)
        for content in contents:
            services.message_ingest(
                message_id=uuid.uuid4(),
                conversation_id=conversation_id,
                content=content,
                timestamp=timezone.now(),
            )
        return Conversation.objects.get(pk=conversation_id)

    return make
