"""Helpers the service modules share: field adapters, raw SELECTs, which path runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
from django.conf import settings
from django.db import connection

from parley.conversations.models import Conversation, Message, MessageGroup
from parley.core import sql

log = structlog.get_logger(__name__)


def database_functions() -> bool:
    """Whether the hot paths run as PostgreSQL functions (migrations 0002 and 0003)."""
    return connection.vendor == "postgresql" and bool(settings.DATABASE_FUNCTIONS)


def conversation_field(name: str) -> Any:
    return sql.field(Conversation, name)


def group_field(name: str) -> Any:
    return sql.field(MessageGroup, name)


GROUP_TABLE = MessageGroup._meta.db_table
CONVERSATION_TABLE = Conversation._meta.db_table
MESSAGE_TABLE = Message._meta.db_table


def message_field(name: str) -> Any:
    return sql.field(Message, name)


def select_rows(query: str, params: Sequence[sql.Param], columns: Sequence[Any]) -> list[list[Any]]:
    """The rows of a raw SELECT, each column converted by its field as the ORM would.

    PostgreSQL already returns UUIDs and aware datetimes, so nothing is
    converted there; SQLite returns text, which the backend's converters
    parse (the same converters ``values_list`` applies).
    """
    with connection.cursor() as cursor:
        cursor.execute(query, sql.adapt(params))
        rows = [list(row) for row in cursor.fetchall()]
    converters = []
    for index, column in enumerate(columns):
        col = column.get_col(column.model._meta.db_table)
        funcs = [*connection.ops.get_db_converters(col), *col.get_db_converters(connection)]
        if funcs:
            converters.append((index, col, funcs))
    for row in rows:
        for index, col, funcs in converters:
            for func in funcs:
                row[index] = func(row[index], col, connection)
    return rows
