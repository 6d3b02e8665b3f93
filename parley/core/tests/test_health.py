"""GET /healthz and /readyz (O-3)."""

from __future__ import annotations

import socket
from typing import Any

import pytest


@pytest.mark.django_db
def test_healthz_answers_200_without_touching_anything(
    client: Any, django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_answers_200_when_database_and_broker_answer(client: Any) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": "ok", "broker": "ok"}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.django_db
def test_readyz_answers_503_naming_an_unreachable_broker(client: Any, settings: Any) -> None:
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{_closed_port()}/0"
    settings.BROKER_IS_FILESYSTEM = False

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "not_ready"
    assert list(body["errors"]) == ["broker"]


@pytest.mark.django_db
def test_readyz_answers_503_naming_an_unreachable_database(client: Any) -> None:
    from unittest import mock

    with mock.patch(
        "parley.core.health._check_database", side_effect=OSError("connection refused")
    ):
        response = client.get("/readyz")

    assert response.status_code == 503
    assert list(response.json()["errors"]) == ["database"]
