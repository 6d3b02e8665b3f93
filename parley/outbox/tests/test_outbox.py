"""The outbox: facts written with their transaction, read back in commit order, pruned safely."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from django.db import connection, transaction
from django.utils import timezone

from parley.live.models import Listener
from parley.live.services import listening_extend
from parley.outbox import selectors, services
from parley.outbox.models import OutboxEvent

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

# The tests commit: on PostgreSQL a reader only sees events of finished
# transactions (models.py), and the test's own transaction would hide them.


def append(kind: str = "test.fact", **data: Any) -> None:
    services.event_append(
        type=kind, occurred_at=T0, tenant_id=None, subject="s", data=data or {"n": 1}
    )


@pytest.mark.django_db(transaction=True)
def test_an_event_commits_and_rolls_back_with_its_transaction() -> None:
    with transaction.atomic():
        append(n=1)

    def fail() -> None:
        with transaction.atomic():
            append(n=2)
            raise RuntimeError("the fact did not happen")

    with pytest.raises(RuntimeError):
        fail()

    events = selectors.events_after(selectors.START)

    assert [e.data for e in events] == [{"n": 1}]
    assert events[0].type == "test.fact"
    assert events[0].occurred_at == T0


@pytest.mark.django_db(transaction=True)
def test_a_reader_reads_on_from_its_position_and_never_twice() -> None:
    for n in range(5):
        append(n=n)
    first = selectors.events_after(selectors.START, limit=3)
    rest = selectors.events_after(first[-1].position, limit=3)

    assert [e.data["n"] for e in first] == [0, 1, 2]
    assert [e.data["n"] for e in rest] == [3, 4]
    assert selectors.events_after(rest[-1].position) == []


@pytest.mark.django_db(transaction=True)
def test_current_position_is_after_everything_already_committed() -> None:
    append(n=1)
    position = selectors.current_position()
    append(n=2)

    assert [e.data["n"] for e in selectors.events_after(position)] == [2]


def test_positions_encode_as_text_and_refuse_anything_else() -> None:
    assert selectors.decode(selectors.encode((123, 45))) == (123, 45)
    for bad in ["", "12", "a-1", "1-b", "-1-2", "1-2-3", "9" * 30 + "-1"]:
        with pytest.raises(ValueError, match="not an outbox position"):
            selectors.decode(bad)


@pytest.mark.django_db(transaction=True)
def test_on_postgresql_an_event_committed_late_with_a_lower_id_is_not_skipped() -> None:
    """Row 1 is inserted first but commits last: a reader must not pass it by."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers: ids commit in order there")
    inserted, release = threading.Event(), threading.Event()

    def slow_writer() -> None:
        with transaction.atomic():
            append(n="slow")
            inserted.set()
            release.wait(10)
        connection.close()

    writer = threading.Thread(target=slow_writer)
    writer.start()
    assert inserted.wait(10)
    append(n="fast")  # a higher id, committed first

    seen = selectors.events_after(selectors.START)
    assert seen == []  # "fast" waits until every older transaction has finished

    release.set()
    writer.join(10)
    seen = selectors.events_after(selectors.START)
    assert [e.data["n"] for e in seen] == ["slow", "fast"]
    assert seen[0].id < seen[1].id


@pytest.mark.django_db(transaction=True)
def test_on_postgresql_the_outbox_rings_only_while_someone_listens() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("NOTIFY is PostgreSQL's")
    db = connection.settings_dict
    dsn = f"host={db['HOST'] or '127.0.0.1'} port={db['PORT'] or 5432} dbname={db['NAME']} "
    dsn += f"user={db['USER']}" + (f" password={db['PASSWORD']}" if db["PASSWORD"] else "")
    with psycopg.connect(dsn, autocommit=True) as listener:
        listener.execute(f"LISTEN {services.OUTBOX_CHANNEL}")

        append(n=1)  # nobody has said it listens
        quiet = list(listener.notifies(timeout=0.3, stop_after=1))

        listening_extend(
            channel=services.OUTBOX_CHANNEL, until=timezone.now() + timedelta(seconds=30)
        )
        append(n=2)
        rung = list(listener.notifies(timeout=2, stop_after=1))

        Listener.objects.filter(channel=services.OUTBOX_CHANNEL).update(
            listening_until=timezone.now() - timedelta(seconds=1)
        )
        append(n=3)  # the listener's promise ran out
        quiet_again = list(listener.notifies(timeout=0.3, stop_after=1))

    assert quiet == []
    assert [n.channel for n in rung] == [services.OUTBOX_CHANNEL]
    assert quiet_again == []


@pytest.mark.django_db(transaction=True)
def test_pruning_keeps_what_a_durable_reader_has_not_read() -> None:
    for n in range(4):
        append(n=n)
    events = selectors.events_after(selectors.START)
    services.cursor_advance(name="exporter", position=events[1].position)

    later = T0 + timedelta(days=30)
    deleted = services.events_prune(now=later)

    assert deleted == 2
    assert [e.data["n"] for e in selectors.events_after(selectors.START)] == [2, 3]


@pytest.mark.django_db(transaction=True)
def test_pruning_keeps_recent_events_even_when_read() -> None:
    append(n=1)
    [event] = selectors.events_after(selectors.START)
    services.cursor_advance(name="exporter", position=event.position)

    assert services.events_prune(now=T0 + timedelta(minutes=5)) == 0
    assert OutboxEvent.objects.count() == 1


def test_iso_is_utc_with_microseconds_and_a_z() -> None:
    moment = datetime(2026, 3, 8, 2, 30, 0, 1200, tzinfo=UTC) + timedelta(hours=0)
    assert services.iso(moment) == "2026-03-08T02:30:00.001200Z"


@pytest.mark.django_db(transaction=True)
def test_on_postgresql_a_transaction_left_open_in_another_database_holds_nobody_back() -> None:
    """Transaction ids are the server's; only this database's writers set the horizon."""
    if connection.vendor != "postgresql":
        pytest.skip("the horizon is PostgreSQL's")
    db = connection.settings_dict
    other = f"host={db['HOST'] or '127.0.0.1'} port={db['PORT'] or 5432} dbname=postgres"
    other += f" user={db['USER']}" + (f" password={db['PASSWORD']}" if db["PASSWORD"] else "")
    with psycopg.connect(other) as elsewhere:  # a transaction, left open
        elsewhere.execute("SELECT pg_current_xact_id()")  # it now holds an id
        append(n="after")
        seen = [e.data["n"] for e in selectors.events_after(selectors.START)]
        elsewhere.rollback()

    assert seen == ["after"]
