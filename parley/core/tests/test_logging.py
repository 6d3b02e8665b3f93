"""Structured logs (O-3): JSON lines that carry the request, conversation and message ids."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from django.conf import settings

from parley.core.logging import configure_logging
from tests.payloads import new_conversation, new_message

pytestmark = pytest.mark.django_db


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Production logging (JSON), with the root console handler writing into a buffer."""
    configure_logging(level="INFO", fmt="json")
    handlers = [
        handler
        for handler in logging.getLogger().handlers
        if isinstance(handler, logging.StreamHandler)
        and isinstance(handler.formatter, structlog.stdlib.ProcessorFormatter)
    ]
    assert len(handlers) == 1
    buffer = io.StringIO()
    handlers[0].setStream(buffer)
    try:
        yield buffer
    finally:
        configure_logging(level=settings.LOG_LEVEL, fmt=settings.LOG_FORMAT)


def records(buffer: io.StringIO) -> list[dict[str, Any]]:
    """Every line is one JSON object."""
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def the_record(buffer: io.StringIO, event: str) -> dict[str, Any]:
    found = [record for record in records(buffer) if record.get("event") == event]
    assert len(found) == 1, buffer.getvalue()
    return found[0]


def test_a_buffered_message_logs_a_json_line_with_its_ids(
    post_event: Any, json_log: io.StringIO
) -> None:
    message_id, conversation_id = uuid.uuid4(), uuid.uuid4()
    response = post_event(
        new_message(message_id, conversation_id), **{"X-Request-ID": "req-from-the-proxy-42"}
    )

    assert response.status_code == 202
    assert response.json()["status"] == "buffered"
    assert response["X-Request-ID"] == "req-from-the-proxy-42"
    record = the_record(json_log, "message_buffered")
    assert record["request_id"] == "req-from-the-proxy-42"
    assert record["conversation_id"] == str(conversation_id)
    assert record["message_id"] == str(message_id)
    assert record["level"] == "info"
    assert record["logger"] == "parley.conversations.services.intake"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", record["timestamp"])


def test_without_an_incoming_request_id_one_is_made_and_returned(
    post_event: Any, json_log: io.StringIO
) -> None:
    response = post_event(new_message(uuid.uuid4(), uuid.uuid4()))

    request_id = response["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    assert the_record(json_log, "message_buffered")["request_id"] == request_id


def test_an_oversized_request_id_is_truncated(post_event: Any, json_log: io.StringIO) -> None:
    response = post_event(new_message(uuid.uuid4(), uuid.uuid4()), **{"X-Request-ID": "r" * 500})

    assert response["X-Request-ID"] == "r" * 64
    assert the_record(json_log, "message_buffered")["request_id"] == "r" * 64


def test_an_adoption_is_logged_under_the_request_that_caused_it(
    post_event: Any, json_log: io.StringIO
) -> None:
    message_id, conversation_id = uuid.uuid4(), uuid.uuid4()
    post_event(new_message(message_id, conversation_id), **{"X-Request-ID": "first"})
    created = post_event(new_conversation(conversation_id), **{"X-Request-ID": "second"})

    assert created.status_code == 201
    record = the_record(json_log, "orphan_adopted")
    assert record["request_id"] == "second"
    assert record["conversation_id"] == str(conversation_id)
    assert record["message_id"] == str(message_id)
