"""Fixtures of the assistance tests: channels pointed at real local servers, a clock, helpers."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import Client

from parley.assistance.channels import _http
from parley.assistance.models import Channel, Delivery, Topic
from parley.assistance.services import catalog


def seed_defaults() -> None:
    """The data migration's topics and channels (A-3); a transactional test flushes them."""
    from importlib import import_module

    from django.apps import apps

    import_module("parley.assistance.migrations.0002_default_topics").create(apps, None)


@pytest.fixture(autouse=True)
def _defaults(request: pytest.FixtureRequest) -> None:
    if "django_db_setup" in request.fixturenames or request.node.get_closest_marker("django_db"):
        request.getfixturevalue("_django_db_helper")
        seed_defaults()


@pytest.fixture(autouse=True)
def _assistance_settings(settings: Any) -> Iterator[None]:
    # No jitter unless a test asks for it: retry times are then exact.
    settings.ASSISTANCE_RETRY_JITTER = 0.0
    settings.WEBHOOK_SECRET = ""
    settings.API_TOKEN = ""
    settings.REPLY_WEBHOOK_URL = ""
    settings.ASSISTANCE_SLACK_WEBHOOK_URL = ""
    _http.reset_client()
    yield
    _http.reset_client()


def make_channel(name: str, kind: str, config: dict[str, Any], **extra: Any) -> Channel:
    return catalog.channel_save(name=name, kind=kind, config=config, **extra)


def make_topic(slug: str, channel: Channel) -> Topic:
    return catalog.topic_save(slug=slug, name=slug.title(), channel=channel)


@pytest.fixture
def route() -> Callable[..., Channel]:
    """route(slug, kind, config, **channel_fields): a topic and its channel."""

    def make(slug: str, kind: str, config: dict[str, Any], **extra: Any) -> Channel:
        channel = make_channel(f"{slug}-{kind}", kind, config, rate_per_second=0, **extra)
        make_topic(slug, channel)
        return channel

    return make


@pytest.fixture
def submit(client: Client) -> Callable[..., Any]:
    """POST an assistance request and return the response."""

    def post(payload: Any = None, *, path: str = "/assistance-requests/", **headers: str) -> Any:
        body = payload if isinstance(payload, str | bytes) else json.dumps(payload)
        return client.post(path, data=body, content_type="application/json", headers=headers)

    return post


def delivery(response: Any) -> Delivery:
    return Delivery.objects.get(pk=response.json()["id"])
