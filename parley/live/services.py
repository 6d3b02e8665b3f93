"""Ringing a channel, and saying that someone listens to it (``models`` says why both)."""

from __future__ import annotations

from datetime import datetime

from django.db import connection

from parley.live.models import Listener

_TABLE = Listener._meta.db_table
_EXTEND = f"""
    INSERT INTO {_TABLE} (channel, listening_until) VALUES (%s, %s)
    ON CONFLICT (channel) DO UPDATE
    SET listening_until = GREATEST({_TABLE}.listening_until, EXCLUDED.listening_until)
"""  # noqa: S608  (table name from the model)


def ring(channel: str, payload: str = "") -> None:
    """NOTIFY ``channel`` when the caller's transaction commits, if anyone listens.

    PostgreSQL only; elsewhere waiters poll, and this does nothing.
    ``parley_ring`` (migration 0002) is the same for SQL functions.
    """
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT parley_ring(%s, %s)", [channel, payload])


def listening_extend(*, channel: str, until: datetime) -> None:
    """Some live process has waiters on ``channel`` until at least ``until``."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(_EXTEND, [channel, until])
