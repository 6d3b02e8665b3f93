"""The README's own samples work as written: its requests, 2025 timestamps included (W-7),
and its example LLM writer (G-8)."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import types
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from parley.conversations.models import Message
from parley.conversations.replies import (
    ContextMessage,
    InboundMessage,
    ReplyRequest,
    is_async_writer,
)
from parley.conversations.writing import AsyncWriterCalls, _event_loop, describe_error

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


# --- The README's example LLM writer, against a local OpenAI-compatible server ----------

WRITER_BLOCK = re.compile(r"```python\n(# mybot/writers\.py.*?)```", re.DOTALL)


def readme_writer() -> types.ModuleType:
    [code] = WRITER_BLOCK.findall(README.read_text())
    module = types.ModuleType("mybot_writers")
    exec(compile(code, "README.md (mybot/writers.py)", "exec"), module.__dict__)
    return module


@dataclass
class ChatServer:
    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    """A local chat-completions endpoint: records each request, answers one sentence."""
    server_state = ChatServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            server_state.received.append({"path": self.path, "json": json.loads(body)})
            answer = {"choices": [{"message": {"role": "assistant", "content": "Yes, it is."}}]}
            payload = json.dumps(answer).encode()
            self.send_response(server_state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server_state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server_state
    server.shutdown()
    server.server_close()


def call_writer(module: types.ModuleType, request: ReplyRequest) -> Future[str]:
    calls = AsyncWriterCalls(module.reply, timeout=5, capacity=2)
    return calls.submit(request)


def close_client(module: types.ModuleType) -> None:
    asyncio.run_coroutine_threadsafe(module.client.aclose(), _event_loop()).result(timeout=5)


def chat_request() -> ReplyRequest:
    at = datetime(2026, 3, 1, 9, tzinfo=UTC)
    return ReplyRequest(
        conversation_id=uuid.uuid4(),
        group_id=7,
        messages=[
            InboundMessage(uuid.uuid4(), "Is the flat near the station still free?", at),
            InboundMessage(uuid.uuid4(), "And the rent?", at),
        ],
        language="en",
        history=[
            ContextMessage(uuid.uuid4(), "INBOUND", "Hello", at),
            ContextMessage(uuid.uuid4(), "OUTBOUND", "Hi! How can I help?", at),
        ],
    )


def test_the_readme_llm_writer_sends_the_conversation_and_returns_the_models_text(
    chat_server: ChatServer,
) -> None:
    module = readme_writer()
    module.LLM_URL = chat_server.url + "/v1/chat/completions"  # type: ignore[attr-defined]
    assert is_async_writer(module.reply)
    try:
        text = call_writer(module, chat_request()).result(timeout=10)
    finally:
        close_client(module)

    assert text == "Yes, it is."
    [call] = chat_server.received
    assert call["path"] == "/v1/chat/completions"
    assert call["json"] == {
        "model": "llama3.2",
        "messages": [
            {"role": "system", "content": module.SYSTEM},
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi! How can I help?"},
            {"role": "user", "content": "Is the flat near the station still free?\nAnd the rent?"},
        ],
    }


def test_an_error_from_the_readme_llm_writers_server_fails_the_attempt(
    chat_server: ChatServer,
) -> None:
    module = readme_writer()
    module.LLM_URL = chat_server.url + "/v1/chat/completions?api_key=sk-secret-0123456789abcdef"  # type: ignore[attr-defined]
    chat_server.status = 503
    try:
        error = call_writer(module, chat_request()).exception(timeout=10)
    finally:
        close_client(module)

    assert error is not None
    described = describe_error(error)
    assert described.startswith("HTTPStatusError: Server error '503 Service Unavailable'")
    assert "sk-secret" not in described
