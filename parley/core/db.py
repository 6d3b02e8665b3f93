"""Database helpers shared by the services."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from django.db import connection, migrations

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


# Session-level advisory locks: (class, key) pairs for process-wide singletons.
_SINGLETON_LOCK_CLASS = 0x50_61_73  # "Pas"
SWEEPER_LOCK_KEY = 1
ANALYTICS_EXPORT_LOCK_KEY = 0x41_4E  # "AN"


@contextmanager
def singleton_lock(key: int) -> Iterator[bool]:
    """Try to become the only holder of ``key``; yield whether this session did.

    A session-level PostgreSQL advisory lock, released on exit, or by the
    server if the process dies and its connection closes. The caller must not
    close the connection inside the block. SQLite has one writer at a time
    anyway: there it always yields True.
    """
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [_SINGLETON_LOCK_CLASS, key])
        acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_SINGLETON_LOCK_CLASS, key])


def postgresql_only_sql(forward: str, backward: str) -> migrations.RunPython:
    """A migration operation that runs raw SQL on PostgreSQL and nothing elsewhere.

    For the database functions of the hot paths: SQLite runs the same steps
    from Python, so it needs no schema object.
    """

    def run(sql: str) -> Callable[[Any, Any], None]:
        def operation(apps: Any, schema_editor: Any) -> None:
            if schema_editor.connection.vendor == "postgresql":
                schema_editor.execute(sql)

        return operation

    return migrations.RunPython(run(forward), run(backward))
