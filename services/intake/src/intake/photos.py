"""Photos in: size and type checked by their bytes (``filetype``), never by name or declared type."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import filetype
from fastapi import UploadFile
from sqlalchemy.ext.asyncio import AsyncSession

from gridline_boot.http import ApiError

from . import store
from .storage import Storage

ALLOWED = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/heic": "heic"}
CHUNK = 64 * 1024


@dataclass(frozen=True)
class Photo:
    data: bytes
    mime: str
    ext: str
    sha256: str


async def read_photos(files: list[UploadFile], *, max_bytes: int, max_count: int) -> list[Photo]:
    if len(files) > max_count:
        raise ApiError(422, "too_many_photos", f"最多上传 {max_count} 张照片")
    out = []
    for i, f in enumerate(files):
        buf = bytearray()
        while chunk := await f.read(CHUNK):  # count while reading: a lying Content-Length changes nothing
            buf += chunk
            if len(buf) > max_bytes:
                raise ApiError(413, "photo_too_large", f"第 {i + 1} 张照片超过 {max_bytes // 1_000_000} MB")
        if not buf:
            raise ApiError(422, "empty_photo", f"第 {i + 1} 张照片为空")
        kind = filetype.guess(bytes(buf[:8192]))
        if kind is None or kind.mime not in ALLOWED:
            raise ApiError(
                415,
                "unsupported_photo_type",
                f"第 {i + 1} 张照片不是 JPEG、PNG、WebP 或 HEIC 图片",
                {"index": i, "detected": kind.mime if kind else None},
            )
        data = bytes(buf)
        out.append(Photo(data, kind.mime, ALLOWED[kind.mime], hashlib.sha256(data).hexdigest()))
    return out


async def save_photos(
    s: AsyncSession, storage: Storage, *, tenant: str, ticket_id: uuid.UUID, purpose: str, photos: list[Photo]
) -> list[uuid.UUID]:
    """Bytes to storage first, then rows in ``s``'s transaction: a failed commit leaves only orphan
    objects (harmless, swept by key prefix), never a row pointing at nothing."""
    ids = []
    for p in photos:
        aid = uuid.uuid4()
        key = f"{tenant}/{ticket_id}/{aid}.{p.ext}"
        await storage.put(key, p.data, p.mime)
        await s.execute(
            store.attachment.insert().values(
                id=aid,
                tenant=tenant,
                ticket_id=ticket_id,
                purpose=purpose,
                storage_key=key,
                content_type=p.mime,
                size=len(p.data),
                sha256=p.sha256,
            )
        )
        ids.append(aid)
    return ids


def describe(rows: list[Any]) -> list[dict[str, Any]]:
    # A fetched 12345 attachment's source URL is not shown: platforms put access tokens in them.
    return [
        {
            "id": str(r.id),
            "purpose": r.purpose,
            "content_type": r.content_type,
            "size": r.size,
            "sha256": r.sha256,
            "state": r.state,
            "error": r.last_error,
        }
        for r in rows
    ]
