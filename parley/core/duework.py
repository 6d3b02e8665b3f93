"""Due work, generically: a deadline column, a lease taken by a conditional UPDATE, a sweep.

The reply path (``parley.conversations.services.sweep``) is this pattern,
specialised and run by PostgreSQL functions. Any other capability whose work
falls due (deliveries and their retries, closes, exports) describes its
table with :class:`DueWork` and claims rows with :func:`claim_due` (a sweep's
batch) or :func:`claim_one` (the fast path of one row):

* the deadline column (``due_field``) says when a row is due; a partial index
  on it, limited to the live statuses, serves the sweep's query;
* a claim moves the deadline to the end of a lease and writes a fresh lease
  token (``token_field``), in one conditional ``UPDATE``. Two runners can
  never both claim a row: the second finds it not due any more. A runner that
  dies leaves the row due again when its lease ends, so the next sweep takes
  it: a lost task, a flushed broker or a killed worker delays the work, and
  never loses it;
* the runner does the slow part outside any transaction, then records the
  result under the row's lock, checking that the token is still its own.

On PostgreSQL the sweep's claim is ``WITH picked AS MATERIALIZED (SELECT pk
... ORDER BY due LIMIT n FOR UPDATE SKIP LOCKED) UPDATE ... WHERE pk IN
(SELECT pk FROM picked) RETURNING pk``: concurrent sweeps take disjoint rows
without waiting for each other. SQLite has no
``SKIP LOCKED``, and needs none: its IMMEDIATE transactions serialise every
writer, and the statement is atomic on its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Model

from parley.core import sql


@dataclass(frozen=True)
class DueWork:
    """A table of due work: where the deadline and the lease token live, which rows are live."""

    model: type[Model]
    due_field: str
    token_field: str
    status_field: str
    live_statuses: tuple[str, ...]

    def column(self, name: str) -> str:
        """A column of the table, quoted for raw SQL."""
        return connection.ops.quote_name(str(sql.field(self.model, name).column))

    @property
    def table(self) -> str:
        return connection.ops.quote_name(self.model._meta.db_table)

    @property
    def pk_column(self) -> str:
        pk = self.model._meta.pk
        assert pk is not None
        return connection.ops.quote_name(str(pk.column))

    def _live(self) -> tuple[str, list[Any]]:
        status = sql.field(self.model, self.status_field)
        placeholders = ", ".join(["%s"] * len(self.live_statuses))
        values = [status.get_db_prep_value(s, connection) for s in self.live_statuses]
        return f"{self.column(self.status_field)} IN ({placeholders})", values

    def _set(self, *, until: datetime, token: uuid.UUID, extra: dict[str, Any]) -> tuple[str, list]:
        assignments = {self.due_field: until, self.token_field: token, **extra}
        parts, values = [], []
        for name, value in assignments.items():
            field = sql.field(self.model, name)
            parts.append(f"{self.column(name)} = %s")
            values.append(field.get_db_prep_value(value, connection))
        return ", ".join(parts), values

    def _due(self, now: datetime) -> tuple[str, list[Any]]:
        field = sql.field(self.model, self.due_field)
        return f"{self.column(self.due_field)} <= %s", [field.get_db_prep_value(now, connection)]


@dataclass(frozen=True)
class Claim:
    """Rows a runner now owns until ``until``; its records must name ``token``."""

    pks: list[Any]
    token: uuid.UUID
    until: datetime


def claim_due(
    work: DueWork,
    *,
    now: datetime,
    lease: timedelta,
    limit: int,
    also_when: tuple[str, Sequence[Any]] | None = None,
    set_values: dict[str, Any] | None = None,
) -> Claim:
    """Claim up to ``limit`` live rows due at ``now``, oldest deadline first (a sweep's batch).

    ``also_when``, as in :func:`claim_one`, makes rows claimable before their deadline.
    """
    token, until = uuid.uuid4(), now + lease
    assignments, set_params = work._set(until=until, token=token, extra=set_values or {})
    live, live_params = work._live()
    due, due_params = work._due(now)
    if also_when is not None:
        due, due_params = f"({due} OR {also_when[0]})", [*due_params, *also_when[1]]
    lock = (
        " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    )
    # The candidates are picked once (a MATERIALIZED CTE): as a plain IN
    # (subquery), PostgreSQL may run the subquery again for each row it
    # updates, and its LIMIT would then take more than ``limit`` rows. The
    # UPDATE repeats the conditions.
    statement = f"""
        WITH picked AS MATERIALIZED (
            SELECT {work.pk_column} AS pk FROM {work.table}
            WHERE {live} AND {due}
            ORDER BY {work.column(work.due_field)}
            LIMIT %s{lock}
        )
        UPDATE {work.table} SET {assignments}
        WHERE {work.pk_column} IN (SELECT pk FROM picked) AND {live} AND {due}
        RETURNING {work.pk_column}
    """  # noqa: S608  (names from the model)
    params = [*live_params, *due_params, limit, *set_params, *live_params, *due_params]
    return Claim(pks=_returning(work, statement, params), token=token, until=until)


def claim_one(
    work: DueWork,
    pk: Any,
    *,
    now: datetime,
    lease: timedelta,
    also_when: tuple[str, Sequence[Any]] | None = None,
    set_values: dict[str, Any] | None = None,
) -> Claim | None:
    """Claim one row if it is live and due (or matches ``also_when``); None if not.

    ``also_when`` is an extra SQL condition that makes a row claimable before
    its deadline, e.g. "never attempted yet" for the fast path of a new row.
    """
    token, until = uuid.uuid4(), now + lease
    assignments, set_params = work._set(until=until, token=token, extra=set_values or {})
    live, live_params = work._live()
    due, due_params = work._due(now)
    condition, condition_params = due, due_params
    if also_when is not None:
        condition = f"({due} OR {also_when[0]})"
        condition_params = [*due_params, *also_when[1]]
    pk_field = work.model._meta.pk
    assert pk_field is not None
    statement = f"""
        UPDATE {work.table} SET {assignments}
        WHERE {work.pk_column} = %s AND {live} AND {condition}
        RETURNING {work.pk_column}
    """  # noqa: S608  (names from the model)
    params = [
        *set_params,
        pk_field.get_db_prep_value(pk, connection),
        *live_params,
        *condition_params,
    ]
    pks = _returning(work, statement, params)
    return Claim(pks=pks, token=token, until=until) if pks else None


def _returning(work: DueWork, statement: str, params: list[Any]) -> list[Any]:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        rows = cursor.fetchall()
    pk_field = work.model._meta.pk
    assert pk_field is not None
    converters = [
        *connection.ops.get_db_converters(pk_field.get_col(work.model._meta.db_table)),
        *pk_field.get_db_converters(connection),
    ]
    result = []
    for (value,) in rows:
        for convert in converters:
            value = convert(value, pk_field.get_col(work.model._meta.db_table), connection)
        result.append(value)
    return result
