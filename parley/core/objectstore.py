"""The object store (SPEC T-6): where transcripts and analytics files go.

It is Django's ``STORAGES["objects"]``: a folder (``var/objects/`` unless
``OBJECT_STORE_URL`` says otherwise) or any S3-compatible bucket through
django-storages, with boto3 reading the standard ``AWS_*`` variables
(``AWS_ENDPOINT_URL`` included). Both backends add the two writes Parley
needs, which Django's ``Storage.save`` cannot express (it renames a file
that exists instead of replacing it or refusing):

* :meth:`ObjectStore.put` creates or replaces an object whole. Readers see
  the old object or the new one, never a part. The analytics exporter uses
  it: a re-run writes the same name with the same bytes.
* :meth:`ObjectStore.put_new` creates an object only if there is none by that
  name, atomically; False when one exists. The archive uses it so that a
  transcript is written once, on versioned buckets too (``If-None-Match: *``
  on S3, a hard link on a folder).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

from botocore.exceptions import ClientError
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import FileSystemStorage, storages
from storages.backends.s3 import S3Storage

# The STORAGES alias (config/settings.py builds it from OBJECT_STORE_URL).
ALIAS = "objects"

_CONTENT_TYPES = {".json": "application/json", ".jsonl": "application/x-ndjson"}


def content_type(name: str) -> str:
    return _CONTENT_TYPES.get(Path(name).suffix, "application/octet-stream")


@runtime_checkable
class ObjectStore(Protocol):
    def put(self, name: str, data: bytes) -> None:
        """Create or replace ``name`` with ``data``, whole."""

    def put_new(self, name: str, data: bytes) -> bool:
        """Create ``name`` with ``data`` unless it exists; whether this call created it."""

    def get(self, name: str) -> bytes:
        """The bytes of ``name``; ``FileNotFoundError`` when there is none."""


def object_store() -> ObjectStore:
    store = storages[ALIAS]
    if not isinstance(store, ObjectStore):
        raise ImproperlyConfigured(
            f"STORAGES[{ALIAS!r}] must be a parley.core.objectstore backend, not "
            f"{type(store).__name__}."
        )
    return store


class FolderStorage(FileSystemStorage):
    """A folder: each write goes to a temporary file in the same folder, is
    flushed to disk, then takes its name in one step (``rename`` to replace,
    ``link`` to create only), so a crash never leaves a partial object."""

    def put(self, name: str, data: bytes) -> None:
        target = Path(self.path(name))
        with self._staged(target, data) as staged:
            os.replace(staged, target)

    def put_new(self, name: str, data: bytes) -> bool:
        target = Path(self.path(name))
        if target.exists():
            return False
        with self._staged(target, data) as staged:
            try:
                os.link(staged, target)
            except FileExistsError:
                return False
        return True

    def get(self, name: str) -> bytes:
        return Path(self.path(name)).read_bytes()

    @contextlib.contextmanager
    def _staged(self, target: Path, data: bytes) -> Iterator[str]:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, staged = tempfile.mkstemp(dir=target.parent, prefix=".staged-", suffix=target.suffix)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            if self.file_permissions_mode is not None:
                os.chmod(staged, self.file_permissions_mode)
            yield staged
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(staged)


class BucketStorage(S3Storage):
    """An S3-compatible bucket; ``location`` is the prefix of every name.

    One ``PutObject`` per write (objects here are small: a transcript, an
    export batch of one type and day), which S3 applies atomically.
    """

    def put(self, name: str, data: bytes) -> None:
        self._put_object(name, data)

    def put_new(self, name: str, data: bytes) -> bool:
        try:
            self._put_object(name, data, IfNoneMatch="*")
        except ClientError as error:
            # 412: an object by that name exists (on a versioned bucket too).
            # Anything else, including 409 ConditionalRequestConflict (a
            # concurrent conditional write in flight), is for the caller to retry.
            if error.response.get("Error", {}).get("Code") == "PreconditionFailed":
                return False
            raise
        return True

    def get(self, name: str) -> bytes:
        key = self._normalize_name(name)
        try:
            body = self.bucket.Object(key).get()["Body"]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise FileNotFoundError(f"no object {key}") from error
            raise
        return bytes(body.read())

    def _put_object(self, name: str, data: bytes, **conditions: str) -> None:
        key = self._normalize_name(name)
        params = self.get_object_parameters(key)
        params.setdefault("ContentType", content_type(name))
        self.bucket.Object(key).put(Body=data, **params, **conditions)
