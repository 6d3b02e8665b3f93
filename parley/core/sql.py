"""Raw SQL for the few statements on the webhook's hot path.

Building a query through the ORM costs more CPU than PostgreSQL spends
running it (README, "Performance"). These helpers run a fixed statement
instead, adapting each parameter with its model field, exactly as the ORM
would (UUIDs as hex on SQLite, datetimes to the backend's format), so the
same SQL serves PostgreSQL and SQLite.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.db.models import Field, Model

Param = tuple["Field[Any, Any]", Any]


def field(model: type[Model], name: str) -> Field[Any, Any]:
    """A concrete column of ``model`` (never a reverse relation)."""
    found = model._meta.get_field(name)
    assert isinstance(found, Field)
    return found


def adapt(params: Sequence[Param]) -> list[Any]:
    return [field.get_db_prep_value(value, connection) for field, value in params]


def execute(sql: str, params: Sequence[Param]) -> int:
    """Run one statement; return the number of rows it changed."""
    with connection.cursor() as cursor:
        cursor.execute(sql, adapt(params))
        return int(cursor.rowcount)


def insert(model: type[Model], values: dict[str, Any]) -> None:
    """INSERT one row of ``model`` whose primary key is in ``values``."""
    fields = [field(model, name) for name in values]
    columns = ", ".join(connection.ops.quote_name(f.column or f.name) for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({columns}) VALUES ({placeholders})",  # noqa: S608  (names from the model)
            [
                f.get_db_prep_save(v, connection)
                for f, v in zip(fields, values.values(), strict=True)
            ],
        )
