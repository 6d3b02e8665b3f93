"""Reply writers (G-7, G-8): whatever turns a closed group into the reply's text.

``settings.REPLY_WRITER`` is the dotted path of one callable, a plain function
or an ``async def`` one, that takes a :class:`ReplyRequest` and returns the
reply text::

    def writer(request: ReplyRequest) -> str: ...
    async def writer(request: ReplyRequest) -> str: ...

The request carries the group's messages and, bounded by
``REPLY_CONTEXT_MESSAGES``, the conversation's earlier messages and replies,
so the writer needs no database access of its own. It runs outside any
database transaction and may be slow (a bot, an LLM): replies fan out to
runners (README, "How a reply is exactly once, and on time"). A call that
raises or outlives ``REPLY_WRITER_TIMEOUT_SECONDS`` is retried with backoff,
up to ``REPLY_MAX_ATTEMPTS`` times. The writer may be called more than once
for the same group after a crash: only one result is ever stored.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
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
DEFAULT_WRITER = "parley.conversations.replies.list_message_ids"


@dataclass(frozen=True)
class InboundMessage:
    """A message of the group being answered."""

    id: UUID
    content: str
    timestamp: datetime


@dataclass(frozen=True)
class ContextMessage:
    """An earlier message of the conversation: the user's (INBOUND) or a reply or
    agent message (OUTBOUND)."""

    id: UUID
    type: str  # "INBOUND" or "OUTBOUND"
    content: str
    timestamp: datetime


@dataclass(frozen=True)
class ReplyRequest:
    conversation_id: UUID
    group_id: int
    # Ordered by event timestamp, then by server arrival (G-2).
    messages: Sequence[InboundMessage]
    language: str
    # The conversation before this group, oldest first in the same order as
    # the read API: at most REPLY_CONTEXT_MESSAGES of the latest
    # messages that are not in this group or a later one, replies included.
    history: Sequence[ContextMessage] = ()
    tenant_id: UUID | None = None
    # 1 on the first call for this group, 2 on its first retry, ...
    attempt: int = 1


ReplyWriter = Callable[[ReplyRequest], str] | Callable[[ReplyRequest], Awaitable[str]]


def list_message_ids(request: ReplyRequest) -> str:
    """The default writer (G-2): a heading, then one message id per line, no trailing newline."""
    heading = HEADINGS.get(request.language, HEADINGS["en"])
    return "\n".join([heading, *(str(message.id) for message in request.messages)])


# It never reads the history, so its requests skip reading it: 20 messages of
# history cost 10 ms of CPU per 200-group sweep batch, measured, for nothing.
# Any writer may say the same.
list_message_ids.wants_history = False  # type: ignore[attr-defined]


@cache
def _load(path: str) -> ReplyWriter:
    writer: ReplyWriter = import_string(path)
    if not callable(writer):
        raise TypeError(f"REPLY_WRITER {path!r} is not callable")
    return writer


def get_reply_writer() -> ReplyWriter:
    return _load(settings.REPLY_WRITER)


def history_limit() -> int:
    """How many earlier messages the configured writer gets: ``REPLY_CONTEXT_MESSAGES``,
    or none for a writer whose ``wants_history`` attribute is False."""
    if getattr(get_reply_writer(), "wants_history", True) is False:
        return 0
    return max(0, settings.REPLY_CONTEXT_MESSAGES)


def is_async_writer(writer: object) -> bool:
    """An ``async def`` function, or an object whose ``__call__`` is one."""
    return inspect.iscoroutinefunction(writer) or inspect.iscoroutinefunction(
        getattr(writer, "__call__", None)  # noqa: B004  (a class instance's method)
    )


def reply_runner_mode() -> str:
    """Who calls the writer: "sweep" (in the sweeper, batch by batch) or "tasks" (runners)."""
    mode: str = settings.REPLY_RUNNER
    if mode == "auto":
        return "sweep" if settings.REPLY_WRITER == DEFAULT_WRITER else "tasks"
    return mode
