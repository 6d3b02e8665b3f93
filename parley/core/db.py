"""Database helpers shared by the services."""

from __future__ import annotations

from uuid import UUID

from django.db import connection

# First key of PostgreSQL's two-key advisory locks: "this lock is about a
# conversation id". Other lock users pick other classes.
_CONVERSATION_LOCK_CLASS = 0x50_61_72  # "Par"


def conversation_id_lock(conversation_id: UUID) -> None:
    """Serialise, until the transaction ends, everyone who acts on this id.

    It exists for ids that have no row yet (B-4): a NEW_MESSAGE that finds no
    conversation and a NEW_CONVERSATION for the same id must not interleave,
    or the message would be buffered beside an open conversation. Rows that
    exist are locked with ``SELECT ... FOR UPDATE`` instead.

    PostgreSQL takes a transaction-level advisory lock. SQLite needs nothing:
    its IMMEDIATE transactions already serialise every writer.
    """
    if connection.vendor != "postgresql":
        return
    # Advisory keys are 32-bit; collisions only serialise two unrelated ids.
    key = int.from_bytes(conversation_id.bytes[:4], "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_CONVERSATION_LOCK_CLASS, key])
