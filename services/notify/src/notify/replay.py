"""``python -m notify replay-failed``: send failed notifications again (the dead-letter replay).

Failed notifications are notify's dead-letter store: every one keeps its reason (`last_code`) and
every attempt. Replaying puts them back in the queue with a fresh attempt budget; the sender's
usual rules (limits, failover, settlement) apply. Events notify could not read at all are in the
Kafka topic ``notify.dead-letter.v1`` and are replayed with ``python -m gridline_messaging.dlq``.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime

from gridline_boot.db import create_engine, session_factory

from . import store
from .settings import NotifySettings


def replay_failed(settings: NotifySettings, argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m notify replay-failed", description=__doc__)
    ap.add_argument("--tenant", help="only this tenant (GB/T 2260 code)")
    ap.add_argument("--code", help="only this failure code; 'unsettled' must be named explicitly")
    ap.add_argument("--since", type=datetime.fromisoformat, help="only notifications created since (ISO 8601)")
    args = ap.parse_args(argv)

    async def go() -> int:
        engine = create_engine(settings.database_url, pool_size=1, schema=store.SCHEMA)
        try:
            async with session_factory(engine)() as s, s.begin():
                return await store.replay_failed(
                    s, datetime.now(UTC), tenant=args.tenant, code=args.code, since=args.since
                )
        finally:
            await engine.dispose()

    n = asyncio.run(go())
    print(f"{n} failed notification(s) queued again")
    return 0
