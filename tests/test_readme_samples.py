"""The README's own sample requests work as written, 2025 timestamps included (W-7)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from parley.conversations.models import Message

README = Path(__file__).resolve().parents[1] / "README.md"
# The JSON bodies of the README's curl examples: -d '...'
CURL_BODY = re.compile(r"-d '(\{.*?\})'", re.DOTALL)


def readme_payloads() -> list[dict[str, Any]]:
    return [json.loads(body) for body in CURL_BODY.findall(README.read_text())]


def test_the_readme_has_sample_payloads() -> None:
    assert [p["type"] for p in readme_payloads()] == ["NEW_CONVERSATION", "NEW_MESSAGE"]


@pytest.mark.django_db
def test_the_readme_samples_are_accepted_and_read_back(post_event: Any, client: Any) -> None:
    created, message = readme_payloads()

    assert post_event(created).status_code == 201
    accepted = post_event(message)

    assert accepted.status_code == 202
    assert accepted.json()["status"] == "queued"
    stored = Message.objects.get(pk=message["data"]["id"])
    assert stored.timestamp.year == 2025
    body = client.get(f"/conversations/{created['data']['id']}/").json()
    assert [m["content"] for m in body["messages"]] == [message["data"]["content"]]
    assert body["messages"][0]["timestamp"] == message["timestamp"]
