"""Every state change of a conversation: open, ingest, adopt, close, reply, sweep.

Locking rule: whatever writes a conversation's groups or messages first locks
the conversation row (``UPDATE ... WHERE`` or ``SELECT ... FOR UPDATE``), in
the same transaction. Ids without a row yet are serialised with an advisory
lock (:func:`parley.core.db.conversation_id_lock`). So, for one conversation,
joining a group, closing it and recording its reply never interleave.

Due work is a column, not a timer: a group that owes a reply has
``reply_due_at`` (indexed). The sweeper, which the scheduler runs every
``SWEEP_INTERVAL`` (250 ms), answers every group that is due, or starts
reply runners that do (a slow writer, G-8). Nothing about a reply lives only
in Redis: a crashed worker, a flushed or restarted Redis, or a lost task
delays a reply by at most a sweep (or a lease), never loses it.
"""

from parley.conversations.services.close import conversation_close
from parley.conversations.services.failures import group_retry
from parley.conversations.services.intake import Ingested, conversation_open, message_ingest
from parley.conversations.services.replies import (
    ReplyOutcome,
    ReplyResult,
    group_reply,
    one_group_time_limits,
)
from parley.conversations.services.runner import RunReport, replies_run
from parley.conversations.services.sweep import SweepReport, due_work_sweep

__all__ = [
    "Ingested",
    "ReplyOutcome",
    "ReplyResult",
    "RunReport",
    "SweepReport",
    "conversation_close",
    "conversation_open",
    "due_work_sweep",
    "group_reply",
    "group_retry",
    "message_ingest",
    "one_group_time_limits",
    "replies_run",
]
