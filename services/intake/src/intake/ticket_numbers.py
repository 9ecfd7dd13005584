"""工单编号 without a hot row: numbers are taken from the per-tenant daily counter in blocks.

Incrementing ``ticket_counter`` inside the report's transaction held that row's lock until the
commit, so every report of a tenant waited for the one before it (measured: ~15 of 20 pool
connections queued on it, ~12 reports/s). A block is taken in its own short transaction instead and
handed out from memory. The counter row still holds the highest number ever given out, so numbers
stay unique per tenant and day whatever the number of replicas.

Accepted costs (docs/intake.md, docs/performance.md): gaps (a block not used up when the process
stops, a number whose report then failed) and, with several replicas, numbers that are not in
arrival order across replicas. The block grows only while numbers are being used up quickly, so
a quiet tenant still gets consecutive numbers and a restart wastes at most one small block.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from .store import ticket_counter

FAST_S = 1.0  # a block used up faster than this: the next one is twice as large


@dataclass
class _Block:
    next: int = 1
    end: int = 0  # last number of the block; next > end means used up
    size: int = 1
    taken_at: float = 0.0


def format_ticket_no(tenant: str, day: date, seq: int) -> str:
    """<tenant>-<yyyymmdd>-<daily sequence, at least 6 digits>, e.g. 330106-20261122-000042."""
    return f"{tenant}-{day:%Y%m%d}-{seq:06d}"


class TicketNumbers:
    """Per (tenant, day) blocks of the daily sequence, one short transaction per block.

    ``engine`` must not be the pool the reports' sessions use (see app.py): a report waiting here may
    hold one of that pool's connections.
    """

    def __init__(self, engine: AsyncEngine, *, max_block: int = 256, clock: Callable[[], float] = time.monotonic):
        self.engine = engine
        self.max_block = max_block
        self.clock = clock
        self._blocks: dict[tuple[str, date], _Block] = {}
        self._locks: dict[tuple[str, date], asyncio.Lock] = {}

    async def next(self, tenant: str, day: date) -> str:
        key = (tenant, day)
        block = self._blocks.get(key)
        if block is None or block.next > block.end:
            lock = self._locks.setdefault(key, asyncio.Lock())
            async with lock:  # one allocation per key at a time; the others take from its block
                block = self._blocks.get(key)
                if block is None or block.next > block.end:
                    block = await self._refill(key, block)
        seq = block.next
        block.next += 1
        return format_ticket_no(tenant, day, seq)

    async def _refill(self, key: tuple[str, date], old: _Block | None) -> _Block:
        now = self.clock()
        if old is None:
            self._forget_other_days(key[1])
            size = 1
        elif now - old.taken_at < FAST_S:
            size = min(old.size * 2, self.max_block)
        else:
            size = max(old.size // 2, 1)
        tenant, day = key
        async with self.engine.begin() as conn:
            end = (
                await conn.execute(
                    insert(ticket_counter)
                    .values(tenant=tenant, day=datetime(day.year, day.month, day.day), seq=size)
                    .on_conflict_do_update(index_elements=["tenant", "day"], set_={"seq": ticket_counter.c.seq + size})
                    .returning(ticket_counter.c.seq)
                )
            ).scalar_one()
        block = _Block(next=end - size + 1, end=end, size=size, taken_at=now)
        self._blocks[key] = block
        return block

    def _forget_other_days(self, day: date) -> None:
        for k in [k for k in self._blocks if k[1] != day]:
            del self._blocks[k]
            self._locks.pop(k, None)
