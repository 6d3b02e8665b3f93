"""Writes of the streaming core: open, continue, claim, release, delete, expire, prune.

Every function is one short transaction (or a few); none waits. The long
poll (``longpoll``) calls them between its waits, from a thread, holding no
connection in between (SPEC L-1).

**Locks.** A claim locks the pending items it takes (``FOR UPDATE SKIP
LOCKED``: two claims never wait for each other's items), then the stream's
row, which it updates only if it is still open. DELETE, expiry and the
withdrawal of an answer lock the stream's row and touch only items already
delivered, never pending ones, so no two of these wait for each other in a
cycle. ``stream_start`` takes a lock on its key first.

**No write while idle.** A request that finds nothing writes nothing until
its 204: no row lock, no acknowledgement to record, and the idle expiry is
moved only if the request could outlive it. Its transactions then commit
without a WAL flush, which matters: 200 idle long polls must not add to the
commits the webhooks wait for (``make bench``, part ``streams``). The 204's
own update of the idle expiry commits without waiting for the disk either
(``synchronous_commit`` off for it alone): a database crash that loses it
lets the stream expire up to one poll early.
"""

from __future__ import annotations

from parley.streams.services._common import (
    ID_PATTERN,
    REQUEST_GRACE,
    Batch,
    Begun,
    new_interaction_id,
)
from parley.streams.services.claims import (
    answer_withdraw,
    pending_exists,
    pending_keys,
    stream_claim,
)
from parley.streams.services.opening import (
    stream_delete,
    stream_finish,
    stream_resume,
    stream_start,
)
from parley.streams.services.sweep import streams_expire, streams_prune

__all__ = [
    "ID_PATTERN",
    "REQUEST_GRACE",
    "Batch",
    "Begun",
    "answer_withdraw",
    "new_interaction_id",
    "pending_exists",
    "pending_keys",
    "stream_claim",
    "stream_delete",
    "stream_finish",
    "stream_resume",
    "stream_start",
    "streams_expire",
    "streams_prune",
]
