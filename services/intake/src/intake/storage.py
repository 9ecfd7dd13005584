"""Where attachment bytes live: a local directory by default, any S3-compatible store as an option.

Both implement :class:`Storage`. Keys are built by intake (``<tenant>/<ticket>/<attachment>.<ext>``),
never taken from a client, so a key cannot climb out of the root directory or bucket prefix.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import Any, Protocol

import boto3

KEY_RE = re.compile(r"^[0-9A-Za-z_-]+(/[0-9A-Za-z_-]+)*\.[a-z0-9]{1,5}$")


class Storage(Protocol):
    async def put(self, key: str, data: bytes, content_type: str) -> None: ...

    async def get(self, key: str) -> bytes: ...

    async def check(self) -> None: ...


def _checked(key: str) -> str:
    if not KEY_RE.match(key):
        raise ValueError(f"bad storage key {key!r}")
    return key


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / _checked(key)

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(path.suffix + ".part")
            tmp.write_bytes(data)
            os.replace(tmp, path)  # readers never see half a file

        await asyncio.to_thread(write)

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread(self._path(key).read_bytes)

    async def check(self) -> None:
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)


class S3Storage:
    """boto3 in a worker thread (boto3 is synchronous); one client, created in the composition root."""

    def __init__(self, bucket: str, *, prefix: str = "", client: Any = None, **client_kwargs: Any) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client or boto3.client("s3", **client_kwargs)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{_checked(key)}" if self.prefix else _checked(key)

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(
            self.client.put_object, Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=content_type
        )

    async def get(self, key: str) -> bytes:
        obj = await asyncio.to_thread(self.client.get_object, Bucket=self.bucket, Key=self._key(key))
        body: bytes = await asyncio.to_thread(obj["Body"].read)
        return body

    async def check(self) -> None:
        await asyncio.to_thread(self.client.head_bucket, Bucket=self.bucket)
