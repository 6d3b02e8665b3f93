"""The exporter (T-4): each event in exactly one object, even when it dies between
writing and marking; on a folder and on moto's S3 server.

The tests commit (``transaction=True``): on PostgreSQL the outbox shows a reader
only the events of finished transactions.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection, transaction

from conftest import MOTO_AWS, ObjectStoreUnderTest
from parley.analytics import services
from parley.analytics.models import ExportBatch
from parley.core.objectstore import FolderStorage
from parley.outbox.models import OutboxCursor, OutboxEvent
from parley.outbox.services import event_append

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[3]
T0 = datetime(2026, 3, 8, 23, 59, 0, tzinfo=UTC)
TENANT = uuid.UUID("9f0c3b52-0c0e-4c39-8b2e-1f4a1a8f4e10")
# T-4 types whose events nothing else reads: a reply.sent row would also make
# a reply stream item (parley/streams, migration 0002), which needs a real reply.
KINDS = ["conversation.opened", "message.received", "survey.recorded", "conversation.closed"]


def append(count: int, *, start: datetime = T0, step: timedelta = timedelta(seconds=1)) -> None:
    """``count`` facts of the T-4 types, one transaction each, a second apart."""
    for n in range(count):
        with transaction.atomic():
            event_append(
                type=KINDS[n % len(KINDS)],
                occurred_at=start + n * step,
                tenant_id=TENANT,
                subject=str(uuid.UUID(int=n)),
                data={"n": n},
            )
    horizon_passed()


def horizon_passed() -> None:
    """Wait until readers may see every event appended so far.

    Readers take only events older than every write transaction running in
    this database (``parley.outbox.models``).
    """
    if connection.vendor != "postgresql":
        return
    deadline = time.monotonic() + 60
    with connection.cursor() as cursor:
        while True:
            cursor.execute(
                "SELECT COALESCE(MAX(txid), 0) < parley_outbox_horizon() FROM outbox_outboxevent"
            )
            if cursor.fetchone()[0] or time.monotonic() > deadline:
                return
            time.sleep(0.1)


def exported(objects: ObjectStoreUnderTest) -> Counter[str]:
    """How many times each event id appears across every analytics object."""
    ids: Counter[str] = Counter()
    for key in objects.names():
        for line in objects.read(key).splitlines():
            ids[json.loads(line)["id"]] += 1
    return ids


def all_ids() -> set[str]:
    return {str(i) for i in OutboxEvent.objects.values_list("id", flat=True)}


def test_each_event_is_exported_once_in_the_object_of_its_type_and_utc_day(
    objects: ObjectStoreUnderTest,
) -> None:
    append(8)  # 23:59:00 .. 23:59:07 on 8 March
    append(4, start=T0 + timedelta(minutes=1))  # 00:00:00 .. on 9 March
    with transaction.atomic():
        event_append(type="console.only", occurred_at=T0, tenant_id=TENANT, subject="x", data={})
    horizon_passed()

    report = services.analytics_export()

    assert (report.batches, report.events, report.exported, report.files) == (1, 13, 12, 8)
    keys = objects.names()
    assert len(keys) == 8
    assert {k.split("/")[1] for k in keys} == {f"type={kind}" for kind in KINDS}
    assert {k.split("/")[2] for k in keys} == {"dt=2026-03-08", "dt=2026-03-09"}
    ids = exported(objects)
    assert set(ids.values()) == {1}
    skipped = OutboxEvent.objects.get(type="console.only").id
    assert set(ids) == all_ids() - {str(skipped)}
    for key in keys:
        first, last = Path(key).stem.split("_")
        seqs = [int(json.loads(line)["id"]) for line in objects.read(key).splitlines()]
        assert seqs == sorted(seqs)
        assert (int(first), int(last)) == (seqs[0], seqs[-1])
        assert len(first) == len(last) == 20
    # The cursor is past everything, including the type it skipped: nothing to redo.
    assert services.analytics_export().batches == 0
    assert ExportBatch.objects.get().status == "DONE"


def test_time_is_when_the_fact_happened_not_when_it_was_exported(
    objects: ObjectStoreUnderTest,
) -> None:
    append(1)
    with time_machine.travel(T0 + timedelta(days=3), tick=False):
        services.analytics_export()

    (key,) = objects.names()
    line = json.loads(objects.read(key))
    assert line["time"] == "2026-03-08T23:59:00Z"
    assert "dt=2026-03-08" in key
    assert line["source"] == f"/parley/tenants/{TENANT}"
    assert line["specversion"] == "1.0"
    assert line["datacontenttype"] == "application/json"


def test_a_run_that_died_between_writing_and_marking_is_redone_with_the_same_bytes(
    objects: ObjectStoreUnderTest,
) -> None:
    append(10)
    batch = services.export_batch_fix()
    assert batch is not None
    services.export_batch_write(batch)
    # ... and the process dies here: the batch is PENDING, the cursor unmoved.
    written = {key: objects.read(key) for key in objects.names()}
    append(3)  # more facts meanwhile

    services.analytics_export()

    for key, body in written.items():
        assert objects.read(key) == body
    ids = exported(objects)
    assert set(ids.values()) == {1}
    assert set(ids) == all_ids()
    assert list(ExportBatch.objects.values_list("status", "events").order_by("id")) == [
        ("DONE", 10),
        ("DONE", 3),
    ]


class FailingFolderStorage(FolderStorage):
    """A folder whose second write fails, as a process killed mid-batch would."""

    writes = 0

    def put(self, name: str, data: bytes) -> None:
        FailingFolderStorage.writes += 1
        if FailingFolderStorage.writes == 2:
            raise OSError("the disk went away")
        super().put(name, data)


def test_a_run_that_died_in_the_middle_of_a_batch_is_redone_whole(
    settings: Any, tmp_path: Path
) -> None:
    root = tmp_path / "objects"
    folder = {
        "BACKEND": "parley.core.objectstore.FolderStorage",
        "OPTIONS": {"location": str(root)},
    }
    failing = {**folder, "BACKEND": f"{__name__}.FailingFolderStorage"}
    settings.STORAGES = {**settings.STORAGES, "objects": failing}
    FailingFolderStorage.writes = 0
    append(12)

    with pytest.raises(OSError, match="the disk went away"):
        services.analytics_export()
    assert len(list(root.rglob("*.jsonl"))) == 1
    settings.STORAGES = {**settings.STORAGES, "objects": folder}
    services.analytics_export()

    store = ObjectStoreUnderTest(
        "folder",
        lambda: sorted(str(p.relative_to(root)) for p in root.rglob("*.jsonl")),
        lambda key: (root / key).read_bytes(),
    )
    ids = exported(store)
    assert set(ids.values()) == {1}
    assert set(ids) == all_ids()


def test_events_committed_after_a_batch_is_fixed_wait_for_the_next_batch(
    objects: ObjectStoreUnderTest,
) -> None:
    append(4)
    batch = services.export_batch_fix()
    assert batch is not None
    append(4, start=T0 + timedelta(seconds=30))
    services.export_batch_mark(batch, services.export_batch_write(batch))

    assert sum(exported(objects).values()) == 4
    services.analytics_export()
    ids = exported(objects)
    assert set(ids.values()) == {1}
    assert len(ids) == 8


def test_batches_are_bounded_by_the_batch_size(
    objects: ObjectStoreUnderTest, settings: Any
) -> None:
    settings.ANALYTICS_EXPORT_BATCH_SIZE = 5
    append(12)

    report = services.analytics_export()

    assert (report.batches, report.events) == (3, 12)
    assert list(ExportBatch.objects.values_list("events", flat=True).order_by("id")) == [5, 5, 2]
    assert set(exported(objects).values()) == {1}


def test_an_exporter_out_of_time_says_so_and_the_next_run_goes_on(
    objects: ObjectStoreUnderTest, settings: Any
) -> None:
    settings.ANALYTICS_EXPORT_BATCH_SIZE = 5
    append(12)

    first = services.analytics_export(deadline=0)
    assert (first.batches, first.more) == (1, True)
    services.analytics_export()
    assert len(exported(objects)) == 12


def test_two_exporters_at_once_export_each_event_once(
    objects: ObjectStoreUnderTest, settings: Any
) -> None:
    """Without the session lock that normally keeps them apart: the unique
    batch start and the conditional mark are what hold."""
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL")
    settings.ANALYTICS_EXPORT_BATCH_SIZE = 7
    append(60)
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def exporter() -> None:
        try:
            barrier.wait()
            while (batch := services.export_batch_fix()) is not None:
                services.export_batch_mark(batch, services.export_batch_write(batch))
        except BaseException as exc:  # reported to the test
            errors.append(exc)
        finally:
            connection.close()

    def producer() -> None:
        try:
            barrier.wait()
            append(30, start=T0 + timedelta(minutes=5))
        finally:
            connection.close()

    threads = [threading.Thread(target=f) for f in (exporter, exporter, producer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    services.analytics_export()  # whatever the producer added after the exporters ended

    assert errors == []
    ids = exported(objects)
    assert set(ids.values()) == {1}
    assert set(ids) == all_ids()


def test_the_command_exports_and_reports(objects: ObjectStoreUnderTest, capsys: Any) -> None:
    append(5)
    call_command("export_analytics")

    assert "1 batches, 5 outbox events, 5 exported in 4 files." in capsys.readouterr().out
    assert len(exported(objects)) == 5


def test_the_outbox_keeps_unexported_events_past_their_retention(
    objects: ObjectStoreUnderTest, settings: Any
) -> None:
    from parley.outbox.services import events_prune

    settings.OUTBOX_RETENTION = timedelta(hours=1)
    append(3)
    later = T0 + timedelta(days=2)
    OutboxCursor.objects.get_or_create(name=services.CURSOR)

    assert events_prune(now=later) == 0  # not exported yet: kept
    services.analytics_export()
    assert events_prune(now=later) == 3


# --- A real exporter process, killed between writing and marking ---------------------


def database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.parametrize("store", ["folder", "bucket"])
def test_an_exporter_killed_between_writing_and_marking_then_rerun_exports_each_event_once(
    store: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The test holds the exporter's cursor row locked, so the process blocks in
    its mark step once its first batch's objects are written; it is killed there
    (SIGKILL), the lock released, and a second process finishes the export."""
    if connection.vendor != "postgresql":
        pytest.skip("needs a database server that a second process can share")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url(),
        "PARLEY_VAR_DIR": str(tmp_path / "var"),
        "ANALYTICS_EXPORT_BATCH_SIZE": "25",
        "LOG_FORMAT": "json",
    }
    root = tmp_path / "objects"
    if store == "folder":
        env["OBJECT_STORE_URL"] = f"file://{root}"

        def keys() -> list[str]:
            return sorted(str(p.relative_to(root)) for p in root.rglob("*.jsonl"))

        def read(key: str) -> bytes:
            return (root / key).read_bytes()

    else:
        bucket = request.getfixturevalue("bucket")
        env |= {
            "OBJECT_STORE_URL": f"s3://{bucket.name}/exports",
            "AWS_ENDPOINT_URL": bucket.endpoint_url,
            **MOTO_AWS,
        }

        def keys() -> list[str]:
            return [k.removeprefix("exports/") for k in bucket.names()]

        def read(key: str) -> bytes:
            return bytes(bucket.read(f"exports/{key}"))

    objects = ObjectStoreUnderTest(store, keys, read)
    append(60)
    OutboxCursor.objects.get_or_create(name=services.CURSOR)
    command = [sys.executable, "manage.py", "export_analytics"]

    with transaction.atomic():
        OutboxCursor.objects.select_for_update().get(name=services.CURSOR)
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while not (objects.names() and ExportBatch.objects.filter(status="PENDING").exists()):
            assert process.poll() is None, process.communicate()[0].decode()
            assert time.monotonic() < deadline, "the exporter wrote nothing"
            time.sleep(0.05)
        time.sleep(0.5)  # let it write the batch's other objects and block on the mark
        assert process.poll() is None
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    written = {key: objects.read(key) for key in objects.names()}
    assert ExportBatch.objects.get().status == "PENDING"
    assert sum(exported(objects).values()) == 25  # the first batch, not marked

    rerun = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )

    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "3 batches, 60 outbox events, 60 exported" in rerun.stdout
    for key, body in written.items():
        assert objects.read(key) == body  # the same names, with the same bytes
    ids = exported(objects)
    assert set(ids.values()) == {1}
    assert set(ids) == all_ids()
