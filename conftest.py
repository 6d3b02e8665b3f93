"""Shared pytest fixtures for every test package."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client


def pytest_configure(config: pytest.Config) -> None:
    # Under CI the suite must run against PostgreSQL and Redis, never fall
    # back to SQLite or the filesystem broker silently.
    if os.environ.get("PARLEY_REQUIRE_SERVICES"):
        engine = settings.DATABASES["default"]["ENGINE"]
        if "postgresql" not in engine or settings.BROKER_IS_FILESYSTEM:
            pytest.exit(
                f"PARLEY_REQUIRE_SERVICES is set but the suite would use {engine} and "
                f"{settings.CELERY_BROKER_URL.split('://')[0]}://; "
                "set DATABASE_URL and REDIS_URL.",
                returncode=2,
            )


# The real brokers of the queue intake tests (RabbitMQ, Redis, moto's SQS).
pytest_plugins = ["tests.brokers"]

PostEvent = Callable[..., Any]


@pytest.fixture
def post_event(client: Client) -> PostEvent:
    """POST a webhook event (a dict, or raw bytes/str) and return the response."""

    def post(payload: Any, *, content_type: str = "application/json", **headers: str) -> Any:
        body = payload if isinstance(payload, bytes | str) else json.dumps(payload)
        return client.post("/webhook/", data=body, content_type=content_type, headers=headers)

    return post


@pytest.fixture(params=["database", "python"])
def sql_path(request: pytest.FixtureRequest, settings: Any) -> str:
    """Run a test with each implementation of the hot paths: PostgreSQL's functions
    (intake, the sweeper's batches) and the portable steps SQLite runs.

    Modules that test intake and replies use it with
    ``pytest.mark.usefixtures``, so both are held to the same cases.
    """
    from django.db import connection

    if request.param == "database" and connection.vendor != "postgresql":
        pytest.skip("the database functions exist on PostgreSQL only")
    settings.DATABASE_FUNCTIONS = request.param == "database"
    return str(request.param)


# --- The object store (SPEC T-6): moto's S3 server and a folder ----------------------


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto's server (S3, SQS...) in a process of its own, on a free port; its URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(  # noqa: S603  (a program of this virtualenv)
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("moto_server did not start") from None
            time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


# Credentials moto accepts; nothing here is secret.
MOTO_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class Bucket:
    """A fresh bucket on moto's server, and a client to look inside it."""

    name: str
    endpoint_url: str
    client: Any

    def names(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.name, Prefix=prefix
        )
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))

    def read(self, key: str) -> bytes:
        return bytes(self.client.get_object(Bucket=self.name, Key=key)["Body"].read())

    def versions(self, key: str) -> int:
        listing = self.client.list_object_versions(Bucket=self.name, Prefix=key)
        return sum(1 for v in listing.get("Versions", []) if v["Key"] == key)

    def storage(self, prefix: str = "") -> dict[str, Any]:
        """A STORAGES entry for this bucket."""
        return {
            "BACKEND": "parley.core.objectstore.BucketStorage",
            "OPTIONS": {
                "bucket_name": self.name,
                "location": prefix,
                "endpoint_url": self.endpoint_url,
                "access_key": MOTO_AWS["AWS_ACCESS_KEY_ID"],
                "secret_key": MOTO_AWS["AWS_SECRET_ACCESS_KEY"],
                "region_name": MOTO_AWS["AWS_DEFAULT_REGION"],
            },
        }


@pytest.fixture
def bucket(moto_server: str) -> Bucket:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=moto_server,
        aws_access_key_id=MOTO_AWS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=MOTO_AWS["AWS_SECRET_ACCESS_KEY"],
        region_name=MOTO_AWS["AWS_DEFAULT_REGION"],
    )
    name = f"parley-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return Bucket(name=name, endpoint_url=moto_server, client=client)


@dataclass
class ObjectStoreUnderTest:
    """The configured object store of a test, and a way to list and read it directly."""

    kind: str  # "folder" or "bucket"
    names: Callable[[], list[str]]
    read: Callable[[str], bytes]
    bucket: Bucket | None = None


@pytest.fixture(params=["folder", "bucket"])
def objects(request: pytest.FixtureRequest, settings: Any, tmp_path: Path) -> ObjectStoreUnderTest:
    """Run a test on each object store: a folder, and an S3 bucket on moto's server
    (with a prefix, which every name must get)."""
    if request.param == "folder":
        root = tmp_path / "objects"
        settings.STORAGES = {
            **settings.STORAGES,
            "objects": {
                "BACKEND": "parley.core.objectstore.FolderStorage",
                "OPTIONS": {"location": str(root)},
            },
        }

        def keys() -> list[str]:
            return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

        return ObjectStoreUnderTest("folder", keys, lambda key: (root / key).read_bytes())
    s3: Bucket = request.getfixturevalue("bucket")
    settings.STORAGES = {**settings.STORAGES, "objects": s3.storage(prefix="lake/parley")}

    def bucket_keys() -> list[str]:
        found = s3.names()
        assert all(key.startswith("lake/parley/") for key in found), found
        return [key.removeprefix("lake/parley/") for key in found]

    return ObjectStoreUnderTest(
        "bucket", bucket_keys, lambda key: s3.read(f"lake/parley/{key}"), bucket=s3
    )
