"""Shared pytest fixtures for every test package."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.test import Client


def pytest_configure(config: pytest.Config) -> None:
    # Under CI the suite must run against PostgreSQL and Redis, never fall
    # back to SQLite or the filesystem broker silently.
    if os.environ.get("PARLEY_REQUIRE_SERVICES"):
        engine = settings.DATABASES["default"]["ENGINE"]
        if "postgresql" not in engine or settings.BROKER_IS_FILESYSTEM:
            pytest.exit(
                f"PARLEY_REQUIRE_SERVICES is set but the suite would use {engine} and "
                f"{settings.CELERY_BROKER_URL.split('://')[0]}://; "
                "set DATABASE_URL and REDIS_URL.",
                returncode=2,
            )


# The real brokers of the queue intake tests (RabbitMQ, Redis, moto's SQS).
pytest_plugins = ["tests.brokers"]

PostEvent = Callable[..., Any]


@pytest.fixture
def post_event(client: Client) -> PostEvent:
    """POST a webhook event (a dict, or raw bytes/str) and return the response."""

    def post(payload: Any, *, content_type: str = "application/json", **headers: str) -> Any:
        body = payload if isinstance(payload, bytes | str) else json.dumps(payload)
        return client.post("/webhook/", data=body, content_type=content_type, headers=headers)

    return post


@pytest.fixture(params=["database", "python"])
def sql_path(request: pytest.FixtureRequest, settings: Any) -> str:
    """Run a test with each implementation of the hot paths: PostgreSQL's functions
    (intake, the sweeper's batches) and the portable steps SQLite runs.

    Modules that test intake and replies use it with
    ``pytest.mark.usefixtures``, so both are held to the same cases.
    """
    from django.db import connection

    if request.param == "database" and connection.vendor != "postgresql":
        pytest.skip("the database functions exist on PostgreSQL only")
    settings.DATABASE_FUNCTIONS = request.param == "database"
    return str(request.param)
