"""The object store (T-6): a folder by default, any S3-compatible bucket by URL.

The bucket is moto's S3 server, in a process of its own; the folder is a
temporary one, or the embedded default under ``PARLEY_VAR_DIR``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from conftest import MOTO_AWS, Bucket, ObjectStoreUnderTest
from parley.core.objectstore import BucketStorage, FolderStorage, object_store

ROOT = Path(__file__).resolve().parents[3]


def test_put_creates_and_replaces_an_object_whole(objects: ObjectStoreUnderTest) -> None:
    store = object_store()
    store.put("analytics/type=a/dt=2026-03-08/1_2.jsonl", b"first\n")
    store.put("analytics/type=a/dt=2026-03-08/1_2.jsonl", b"second\n")

    assert objects.names() == ["analytics/type=a/dt=2026-03-08/1_2.jsonl"]
    assert objects.read("analytics/type=a/dt=2026-03-08/1_2.jsonl") == b"second\n"
    assert store.get("analytics/type=a/dt=2026-03-08/1_2.jsonl") == b"second\n"


def test_put_new_creates_once_and_keeps_the_first_bytes(objects: ObjectStoreUnderTest) -> None:
    store = object_store()

    assert store.put_new("transcripts/t/c.json", b"one") is True
    assert store.put_new("transcripts/t/c.json", b"two") is False

    assert objects.names() == ["transcripts/t/c.json"]
    assert objects.read("transcripts/t/c.json") == b"one"


def test_put_new_from_many_threads_at_once_creates_one_object(
    objects: ObjectStoreUnderTest,
) -> None:
    store = object_store()
    barrier = threading.Barrier(8)
    results: list[bool] = []

    def write(n: int) -> None:
        barrier.wait()
        results.append(store.put_new("transcripts/race.json", f"writer {n}".encode()))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results) == [False] * 7 + [True]
    assert objects.names() == ["transcripts/race.json"]
    assert objects.read("transcripts/race.json").startswith(b"writer ")


def test_get_of_a_missing_object_is_file_not_found(objects: ObjectStoreUnderTest) -> None:
    with pytest.raises(FileNotFoundError):
        object_store().get("transcripts/none.json")


def test_a_versioned_bucket_keeps_one_version_of_a_put_new_object(
    settings: Any, bucket: Bucket
) -> None:
    bucket.client.put_bucket_versioning(
        Bucket=bucket.name, VersioningConfiguration={"Status": "Enabled"}
    )
    settings.STORAGES = {**settings.STORAGES, "objects": bucket.storage()}
    store = object_store()

    assert store.put_new("transcripts/c.json", b"one") is True
    assert store.put_new("transcripts/c.json", b"two") is False

    assert bucket.versions("transcripts/c.json") == 1
    assert bucket.read("transcripts/c.json") == b"one"


def test_objects_in_a_bucket_carry_their_content_type(settings: Any, bucket: Bucket) -> None:
    settings.STORAGES = {**settings.STORAGES, "objects": bucket.storage()}
    object_store().put("a/b.jsonl", b"{}\n")
    object_store().put_new("a/c.json", b"{}")

    head = bucket.client.head_object
    assert head(Bucket=bucket.name, Key="a/b.jsonl")["ContentType"] == "application/x-ndjson"
    assert head(Bucket=bucket.name, Key="a/c.json")["ContentType"] == "application/json"


def test_a_folder_write_leaves_no_staging_file_behind(settings: Any, tmp_path: Path) -> None:
    settings.STORAGES = {
        **settings.STORAGES,
        "objects": {
            "BACKEND": "parley.core.objectstore.FolderStorage",
            "OPTIONS": {"location": str(tmp_path)},
        },
    }
    object_store().put("x/y.jsonl", b"1")
    object_store().put_new("x/z.json", b"2")
    object_store().put_new("x/z.json", b"3")

    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["y.jsonl", "z.json"]


def test_names_cannot_leave_the_folder(settings: Any, tmp_path: Path) -> None:
    settings.STORAGES = {
        **settings.STORAGES,
        "objects": {
            "BACKEND": "parley.core.objectstore.FolderStorage",
            "OPTIONS": {"location": str(tmp_path / "objects")},
        },
    }
    from django.core.exceptions import SuspiciousFileOperation

    with pytest.raises(SuspiciousFileOperation):
        object_store().put("../escape.json", b"no")


# --- OBJECT_STORE_URL, as a deployment sets it --------------------------------------


def run_settings(env: dict[str, str], script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh process with ``env`` over a clean environment."""
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "OBJECT_STORE", "DJANGO_SETTINGS"))
    }
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + script],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_default_is_the_folder_var_objects(tmp_path: Path) -> None:
    result = run_settings(
        {"PARLEY_VAR_DIR": str(tmp_path)},
        "from parley.core.objectstore import object_store\n"
        "object_store().put('transcripts/x.json', b'hello')\n"
        "print(type(object_store()).__name__)",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == FolderStorage.__name__
    assert (tmp_path / "objects" / "transcripts" / "x.json").read_bytes() == b"hello"


def test_an_s3_url_and_the_standard_aws_variables_reach_the_bucket(
    tmp_path: Path, bucket: Bucket
) -> None:
    """``s3://bucket/prefix`` with ``AWS_ENDPOINT_URL`` and the credentials from the
    environment only, as boto3 reads them: no Parley-specific AWS setting."""
    result = run_settings(
        {
            "PARLEY_VAR_DIR": str(tmp_path),
            "OBJECT_STORE_URL": f"s3://{bucket.name}/lake/parley/",
            "AWS_ENDPOINT_URL": bucket.endpoint_url,
            **MOTO_AWS,
        },
        "from parley.core.objectstore import object_store\n"
        "object_store().put('analytics/type=t/dt=2026-01-01/1_1.jsonl', b'line')\n"
        "print(type(object_store()).__name__)",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == BucketStorage.__name__
    assert bucket.names() == ["lake/parley/analytics/type=t/dt=2026-01-01/1_1.jsonl"]
    assert not (tmp_path / "objects").exists()


def test_a_file_url_names_another_folder(tmp_path: Path) -> None:
    result = run_settings(
        {"PARLEY_VAR_DIR": str(tmp_path / "var"), "OBJECT_STORE_URL": f"file://{tmp_path}/lake"},
        "from parley.core.objectstore import object_store\n"
        "object_store().put('transcripts/x.json', b'hi')",
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "lake" / "transcripts" / "x.json").read_bytes() == b"hi"


@pytest.mark.parametrize("url", ["s3://", "ftp://host/x", "file://relative/path", "bucket/prefix"])
def test_an_unusable_object_store_url_stops_the_start(tmp_path: Path, url: str) -> None:
    result = run_settings({"PARLEY_VAR_DIR": str(tmp_path), "OBJECT_STORE_URL": url}, "")
    assert result.returncode != 0
    assert "OBJECT_STORE_URL" in result.stderr
