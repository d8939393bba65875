"""Files by key in a local folder or an S3-compatible bucket, behind one small interface.

The platform's pods need no shared volume when layouts, reports and model
versions live in object storage; a laptop keeps the plain folder. Keys are
``/``-separated relative names (``buildings/<key>/layout.json``) that callers
build from validated building partition keys; each backend checks them again
(:func:`checked_key`) so no id becomes a path or an object name unchecked.
Credentials and the endpoint of an S3-compatible server come from the standard
AWS environment (``AWS_ACCESS_KEY_ID``..., ``AWS_ENDPOINT_URL_S3``) or the
instance role, never from this repository.
"""

import functools
import re
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from ceilgrid_assets.core.engine.io import write_atomic

_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


def checked_key(key: str) -> str:
    """``key`` if every segment is a plain name (no ``..``, no leading dot, no empty part)."""
    if not key or not all(_SEGMENT.fullmatch(part) for part in key.split("/")):
        raise ValueError(f"storage key {ascii(key[:120])} is not a plain relative name")
    return key


class BlobStore(Protocol):
    """What the platform needs of storage: whole objects written at once, read by key."""

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``; a reader sees the old bytes or the new, never half."""

    def get_bytes(self, key: str) -> bytes | None:
        """The bytes under ``key``, or None when there is no such object."""

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str) -> list[str]:
        """Keys under the folder ``prefix`` (no trailing slash), sorted."""

    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""

    def describe(self, key: str) -> str:
        """Where ``key`` lives, for metadata: a file path or an ``s3://`` URL."""


class LocalBlobs:
    """Files under a root folder: ``key`` is the path relative to the root (today's layout)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        """``root/key`` resolved, refused unless it stays inside the root.

        The key is checked first and the resolved path second, so neither a bad
        key nor a planted symlink can lead a write outside the storage root.
        """
        root = self.root.resolve()
        path = root.joinpath(*checked_key(key).split("/")).resolve()
        if not path.is_relative_to(root) or path == root:
            raise ValueError(f"storage path {path} is outside the storage root {root}")
        return path

    def put_bytes(self, key: str, data: bytes) -> None:
        write_atomic(self.path(key), data)

    def get_bytes(self, key: str) -> bytes | None:
        path = self.path(key)
        return path.read_bytes() if path.is_file() else None

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        folder = self.path(prefix)
        if not folder.is_dir():
            return []
        names = (path.relative_to(folder) for path in folder.rglob("*") if path.is_file())
        # Hidden names are write_atomic's temporary files.
        return sorted(
            f"{prefix}/{name.as_posix()}"
            for name in names
            if not any(part.startswith(".") for part in name.parts)
        )

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def describe(self, key: str) -> str:
        return str(self.path(key))


class S3Blobs:
    """Objects in ``bucket`` under ``prefix``; a PUT replaces an object whole."""

    def __init__(self, bucket: str, prefix: str = "") -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    @functools.cached_property
    def client(self) -> Any:
        import boto3  # only a platform on object storage pays for the import

        return boto3.client("s3")

    def _name(self, key: str) -> str:
        return self.prefix + checked_key(key)

    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._name(key), Body=data)

    def get_bytes(self, key: str) -> bytes | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._name(key))
        except self.client.exceptions.NoSuchKey:
            return None
        return response["Body"].read()

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def list(self, prefix: str) -> list[str]:
        folder = self._name(prefix) + "/"
        keys = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=folder
        ):
            keys.extend(item["Key"][len(self.prefix) :] for item in page.get("Contents", []))
        return sorted(keys)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._name(key))

    def describe(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._name(key)}"


@functools.cache
def open_blobs(url: str, root: str) -> BlobStore:
    """``s3://bucket/prefix`` as :class:`S3Blobs`; an empty URL is the folder ``root``.

    Cached, so a run reuses one client (and its connections) for every object.
    """
    if not url:
        return LocalBlobs(root)
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"storage URL {url!r}: expected s3://BUCKET[/PREFIX]")
    return S3Blobs(parts.netloc, parts.path)
