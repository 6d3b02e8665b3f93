"""Reply writers (G-7): whatever turns a closed group into the reply's text.

``settings.REPLY_WRITER`` is the dotted path of a callable taking a
:class:`ReplyRequest` and returning the reply text. It runs outside any
database transaction, may be slow (a bot, an LLM), and may run more than once
for the same group after a crash: only one result is ever stored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from uuid import UUID

from django.conf import settings
from django.utils.module_loading import import_string

HEADINGS = {
    "en": "Received messages:",
    "pt-BR": "Mensagens recebidas:",
}


@dataclass(frozen=True)
class InboundMessage:
    id: UUID
    content: str
    timestamp: datetime


@dataclass(frozen=True)
class ReplyRequest:
    conversation_id: UUID
    group_id: int
    # Ordered by event timestamp, then by server arrival (G-2).
    messages: Sequence[InboundMessage]
    language: str


ReplyWriter = Callable[[ReplyRequest], str]


def list_message_ids(request: ReplyRequest) -> str:
    """The default writer (G-2): a heading, then one message id per line, no trailing newline."""
    heading = HEADINGS.get(request.language, HEADINGS["en"])
    return "\n".join([heading, *(str(message.id) for message in request.messages)])


@cache
def _load(path: str) -> ReplyWriter:
    writer: ReplyWriter = import_string(path)
    return writer


def get_reply_writer() -> ReplyWriter:
    return _load(settings.REPLY_WRITER)
