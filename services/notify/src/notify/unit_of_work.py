"""Writes buffered during a transaction and flushed in bulk just before it commits.

The messaging library's consumer calls one handler per event inside one transaction per Kafka
batch. A handler that queried and inserted per event cost ~4 round trips per message; instead,
notify's handlers append their requests to a per-transaction buffer, and ``FlushingSession``
runs the buffer's flush (a few statements for the whole batch) when the ``session.begin()`` block
ends without error — still before the commit, so the rows commit with the inbox claims or not at
all. On an error the buffers are dropped with the rollback (the consumer then replays one by one).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, AsyncSessionTransaction

_BUFFERS = "notify.before_commit"

Flush = Callable[[AsyncSession, list[Any]], Awaitable[None]]


def buffer(session: AsyncSession, key: str, flush: Flush) -> list[Any]:
    """This transaction's buffer for ``key``; ``flush(session, items)`` runs once, before the commit."""
    buffers: dict[str, tuple[Flush, list[Any]]] = session.info.setdefault(_BUFFERS, {})
    if key not in buffers:
        buffers[key] = (flush, [])
    return buffers[key][1]


async def flush_all(session: AsyncSession) -> None:
    while buffers := session.info.pop(_BUFFERS, None):  # a flush may buffer more
        for flush, items in buffers.values():
            if items:
                await flush(session, items)


def discard(session: AsyncSession) -> None:
    session.info.pop(_BUFFERS, None)


class _Begin:
    def __init__(self, session: AsyncSession, inner: AsyncSessionTransaction) -> None:
        self.session = session
        self.inner = inner

    async def __aenter__(self) -> AsyncSessionTransaction:
        discard(self.session)
        return await self.inner.__aenter__()

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if et is None:
            try:
                await flush_all(self.session)
            except BaseException as err:
                discard(self.session)
                await self.inner.__aexit__(type(err), err, err.__traceback__)
                raise
        else:
            discard(self.session)
        await self.inner.__aexit__(et, exc, tb)


class FlushingSession(AsyncSession):
    """``async with session.begin():`` flushes the transaction's buffers before committing."""

    def begin(self) -> Any:  # _Begin, used only as an async context manager
        return _Begin(self, super().begin())
