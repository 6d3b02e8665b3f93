"""Every error, on every endpoint, is application/problem+json (W-3)."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest

pytestmark = pytest.mark.django_db


def test_unknown_url_is_a_problem_404(client: Any, settings: Any) -> None:
    settings.DEBUG = False
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "not_found"


def test_unexpected_exception_is_a_logged_problem_500_without_a_trace(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with mock.patch(
        "parley.conversations.services.conversation_open",
        side_effect=RuntimeError("boom at line 7"),
    ):
        response = client.post(
            "/webhook/",
            data={
                "type": "NEW_CONVERSATION",
                "timestamp": "2025-06-04T14:20:00Z",
                "data": {"id": "6a41b347-8d80-4ce9-84ba-7af66f369f6a"},
            },
            content_type="application/json",
        )

    assert response.status_code == 500
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "internal_error"
    assert "boom" not in response.content.decode()
    assert "Traceback" not in response.content.decode()
    assert any("unhandled_error" in record.getMessage() for record in caplog.records)


def test_django_level_500_handler_is_a_problem() -> None:
    from django.test import RequestFactory

    from parley.core.errors import handler500

    response = handler500(RequestFactory().get("/"))
    assert response.status_code == 500
    assert response["Content-Type"] == "application/problem+json"
