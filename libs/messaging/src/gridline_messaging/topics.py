"""Create every topic of the catalogue: ``python -m gridline_messaging.topics create``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from gridline_contracts.topics import ALL_TOPICS

log = logging.getLogger(__name__)


async def ensure_topics(bootstrap_servers: str, replication_factor: int = 1) -> list[str]:
    """Create missing topics; existing ones are left alone. Returns the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="gridline-topics")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in ALL_TOPICS if t.name not in existing]
        if not missing:
            return []
        new = [
            NewTopic(
                t.name,
                t.partitions,
                replication_factor,
                topic_configs={"retention.ms": str(t.retention_ms), "min.insync.replicas": "1"},
            )
            for t in missing
        ]
        with contextlib.suppress(TopicAlreadyExistsError):  # a concurrent creator won; fine
            await admin.create_topics(new, timeout_ms=30_000)
        return [t.name for t in missing]
    finally:
        await admin.close()


def main(argv: list[str]) -> int:
    if argv[:1] != ["create"]:
        print("usage: python -m gridline_messaging.topics create", file=sys.stderr)
        return 2
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        print("KAFKA_BOOTSTRAP_SERVERS is not set", file=sys.stderr)
        return 2
    created = asyncio.run(ensure_topics(bootstrap, int(os.environ.get("KAFKA_REPLICATION_FACTOR", "1"))))
    print(f"created {len(created)} topics" + (f": {', '.join(created)}" if created else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
