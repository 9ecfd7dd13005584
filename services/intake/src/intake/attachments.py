"""12345 attachment URLs: recorded with the order, fetched afterwards, stored through :class:`Storage`.

An order is never held up or lost by its attachments: the push only records one ``pending`` row per
URL (in the order's transaction). The fetcher (role ``worker``) claims due rows with a lease
(``FOR UPDATE SKIP LOCKED``, so replicas share the work and a crashed fetch is retried when the lease
runs out), downloads each with httpx — HTTPS, bounded timeouts, a byte limit counted while reading,
the type decided by the content (``filetype``), never by the name or the declared Content-Type — and
then either stores it (``stored``), retries it later with exponential backoff (network errors,
timeouts, 408/429/5xx, storage errors), or gives up with a reason (``failed``: 4xx, too large,
unsupported or empty content, or ``max_attempts`` used up). Failed attachments stay listed with their
reason; the order itself is never affected.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import ssl
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import filetype
import httpx
from sqlalchemy import and_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from . import metrics, store
from .photos import ALLOWED as PHOTO_TYPES
from .storage import Storage

log = logging.getLogger(__name__)

# Photos as for citizen uploads, plus what 12345 platforms attach besides: scanned documents and call
# or voice recordings, short videos. Decided by the bytes.
ALLOWED: dict[str, str] = {
    **PHOTO_TYPES,
    "application/pdf": "pdf",
    "audio/mpeg": "mp3",
    "audio/amr": "amr",
    "audio/x-wav": "wav",
    "audio/mp4": "m4a",
    "video/mp4": "mp4",
}
CHUNK = 64 * 1024


class Permanent(Exception):
    """Retrying cannot help (the URL answers 404, the content is not allowed, …)."""


class Transient(Exception):
    """Worth another try later (network, timeout, 5xx, 429, storage)."""


@dataclass(frozen=True)
class FetchSettings:
    max_bytes: int = 20_000_000
    max_attempts: int = 5
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    backoff_initial: timedelta = timedelta(seconds=30)
    backoff_max: timedelta = timedelta(hours=1)
    lease: timedelta = timedelta(minutes=5)  # a claimed row is retried after this if its fetcher died
    batch: int = 10
    ca_file: Path | None = None  # a private CA of the platform's file server (government intranet)


async def queue_urls(s: AsyncSession, *, tenant: str, ticket_id: uuid.UUID, urls: Sequence[str], now: datetime) -> int:
    """Record the URLs to fetch, in the caller's transaction; a URL already known for the ticket is kept."""
    if not urls:
        return 0
    rows = [
        {
            "id": uuid.uuid4(),
            "tenant": tenant,
            "ticket_id": ticket_id,
            "purpose": "report",
            "source_url": u,
            "state": "pending",
            "attempts": 0,
            "next_attempt_at": now,
        }
        for u in dict.fromkeys(urls)  # the same URL twice in one order is one attachment
    ]
    stmt = (
        insert(store.attachment)
        .values(rows)
        .on_conflict_do_nothing(
            index_elements=["ticket_id", "source_url"], index_where=store.attachment.c.source_url.isnot(None)
        )
    )
    res = await s.execute(stmt)
    return int(res.rowcount or 0)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Fetched:
    data: bytes
    mime: str
    ext: str
    sha256: str


class Fetcher:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        storage: Storage,
        settings: FetchSettings | None = None,
        *,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.sessions = sessions
        self.storage = storage
        self.cfg = settings or FetchSettings()
        verify: ssl.SSLContext | bool = True
        if self.cfg.ca_file is not None:
            verify = ssl.create_default_context(cafile=str(self.cfg.ca_file))
        self.client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(self.cfg.read_timeout_s, connect=self.cfg.connect_timeout_s),
            verify=verify,
            follow_redirects=False,  # a redirect is followed by hand, so it must stay on HTTPS
            headers={"User-Agent": "gridline-intake/1 (attachment fetcher)"},
        )

    async def close(self) -> None:
        await self.client.aclose()

    def backoff(self, attempts: int) -> timedelta:
        delay: timedelta = self.cfg.backoff_initial * (2 ** max(attempts - 1, 0))
        return min(delay, self.cfg.backoff_max)

    async def _claim(self, now: datetime) -> list[Any]:
        a = store.attachment
        async with self.sessions() as s, s.begin():
            rows = (
                await s.execute(
                    select(a.c.id, a.c.tenant, a.c.ticket_id, a.c.source_url, a.c.attempts)
                    .where(a.c.state == "pending", a.c.next_attempt_at <= now)
                    .order_by(a.c.next_attempt_at)
                    .limit(self.cfg.batch)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if rows:
                await s.execute(
                    update(a)
                    .where(a.c.id.in_([r.id for r in rows]))
                    .values(attempts=a.c.attempts + 1, next_attempt_at=now + self.cfg.lease)
                )
        return list(rows)

    async def download(self, url: str) -> Fetched:
        for _ in range(4):  # the URL and up to three redirects
            if not url.startswith("https://"):
                raise Permanent("insecure_url")
            try:
                async with self.client.stream("GET", url) as r:
                    if r.status_code in (301, 302, 303, 307, 308) and "location" in r.headers:
                        url = str(r.url.join(r.headers["location"]))
                        continue
                    if r.status_code in (408, 425, 429) or r.status_code >= 500:
                        raise Transient(f"http_{r.status_code}")
                    if r.status_code != 200:
                        raise Permanent(f"http_{r.status_code}")
                    declared = r.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > self.cfg.max_bytes:
                        raise Permanent("too_large")
                    buf = bytearray()
                    async for chunk in r.aiter_bytes(CHUNK):
                        buf += chunk
                        if len(buf) > self.cfg.max_bytes:  # counted, not trusted
                            raise Permanent("too_large")
            except httpx.TransportError as exc:  # connect/read timeouts, refused, TLS, protocol errors
                raise Transient(type(exc).__name__) from exc
            if not buf:
                raise Permanent("empty")
            kind = filetype.guess(bytes(buf[:8192]))
            if kind is None or kind.mime not in ALLOWED:
                raise Permanent(f"unsupported_type:{kind.mime if kind else 'unknown'}")
            data = bytes(buf)
            return Fetched(data, kind.mime, ALLOWED[kind.mime], hashlib.sha256(data).hexdigest())
        raise Permanent("too_many_redirects")

    async def _fetch_one(self, row: Any) -> str:
        a = store.attachment
        try:
            got = await self.download(row.source_url)
            key = f"{row.tenant}/{row.ticket_id}/{row.id}.{got.ext}"
            try:
                await self.storage.put(key, got.data, got.mime)
            except Exception as exc:  # any storage backend error: keep the row, try again later
                raise Transient(f"storage:{type(exc).__name__}") from exc
        except Permanent as exc:
            return await self._finish(row.id, state="failed", last_error=str(exc))
        except Transient as exc:
            attempts = row.attempts + 1
            if attempts >= self.cfg.max_attempts:
                return await self._finish(row.id, state="failed", last_error=f"gave_up_after_{attempts}:{exc}")
            return await self._finish(
                row.id, state="pending", last_error=str(exc), next_attempt_at=datetime.now(UTC) + self.backoff(attempts)
            )
        async with self.sessions() as s, s.begin():
            await s.execute(
                update(a)
                .where(and_(a.c.id == row.id, a.c.state == "pending"))
                .values(
                    state="stored",
                    storage_key=key,
                    content_type=got.mime,
                    size=len(got.data),
                    sha256=got.sha256,
                    last_error=None,
                    next_attempt_at=None,
                )
            )
        metrics.ATTACHMENT_FETCHES.labels("stored").inc()
        return "stored"

    async def _finish(
        self, aid: uuid.UUID, *, state: str, last_error: str, next_attempt_at: datetime | None = None
    ) -> str:
        a = store.attachment
        async with self.sessions() as s, s.begin():
            await s.execute(
                update(a)
                .where(and_(a.c.id == aid, a.c.state == "pending"))
                .values(state=state, last_error=last_error[:200], next_attempt_at=next_attempt_at)
            )
        outcome = "retry" if state == "pending" else "failed"
        metrics.ATTACHMENT_FETCHES.labels(outcome).inc()
        log.warning("attachment %s: %s (%s)", aid, outcome, last_error)  # never the URL: it may hold a token
        return outcome

    async def run_once(self, now: datetime | None = None) -> dict[str, int]:
        """Fetch what is due now; returns how many were stored, retried and failed."""
        rows = await self._claim(now or datetime.now(UTC))
        outcomes = await asyncio.gather(*(self._fetch_one(r) for r in rows))
        return {k: outcomes.count(k) for k in ("stored", "retry", "failed")}

    async def run(self, interval_s: float = 5.0) -> None:
        while True:
            try:
                done = await self.run_once()
                if sum(done.values()) == self.cfg.batch:
                    continue  # a full batch: more may be due
            except asyncio.CancelledError:
                raise
            except Exception:  # the database is down, say: log and try again next round
                log.exception("attachment fetch round failed")
            await asyncio.sleep(interval_s)


def start_fetcher(
    sessions: async_sessionmaker[AsyncSession], storage: Storage, cfg: FetchSettings, interval_s: float
) -> Callable[[], Awaitable[None]]:
    """The worker-role loop, started by the composition root; returns its stop function."""
    fetcher = Fetcher(sessions, storage, cfg)
    task = asyncio.create_task(fetcher.run(interval_s), name="intake-attachment-fetcher")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await fetcher.close()

    return stop
