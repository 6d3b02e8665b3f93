"""``manage.py publish_events`` and ``manage.py consume`` as commands."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.payloads import new_conversation

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def var_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One folder for the module: kombu's filesystem transport keeps what it
    # declared in memory, per process, whatever the folder.
    return tmp_path_factory.mktemp("var")


@pytest.fixture
def folder(var_dir: Path, settings: Any) -> Path:
    settings.VAR_DIR = var_dir
    messages = var_dir / "intake" / "messages"
    for old in messages.glob("*.msg"):
        old.unlink()
    return messages


def test_publish_events_publishes_a_file_and_sums_it_up(
    tmp_path: Path, folder: Path, capsys: Any
) -> None:
    lines = [json.dumps(new_conversation(uuid.uuid4())) for _ in range(5)]
    source = tmp_path / "events.jsonl"
    source.write_text("\n".join([*lines, "", "{broken"]) + "\n")
    call_command("publish_events", str(source), url="filesystem://")
    out = capsys.readouterr().out
    assert "published 6 events" in out
    assert "1 will be dead letters" in out
    assert "1 blank lines skipped" in out
    assert len(list(folder.glob("*.msg"))) == 6


def test_publish_events_reads_standard_input(folder: Path, capsys: Any, monkeypatch: Any) -> None:
    body = json.dumps(new_conversation(uuid.uuid4())).encode() + b"\n"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(body)))
    call_command("publish_events", "-", url="filesystem://")
    assert "published 1 events" in capsys.readouterr().out
    assert len(list(folder.glob("*.msg"))) == 1


def test_publish_events_refuses_a_missing_file() -> None:
    with pytest.raises(CommandError, match="No such file"):
        call_command("publish_events", "/nonexistent/events.jsonl", url="filesystem://")


def test_an_unknown_broker_scheme_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="kafka"):
        call_command("consume", url="kafka://localhost:9092")
