"""Session-wide real infrastructure for the integration and e2e tiers.

If KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL are set (``make test`` sets them after ``devstack up``),
they are used as they are; otherwise this session starts its own broker and cluster through
tools/devstack.py and stops them at the end.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import devstack  # noqa: E402


@dataclass(frozen=True)
class Stack:
    kafka: str
    database_url: str
    kafka_handle: devstack.KafkaHandle | None
    pg_handle: devstack.PgHandle | None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        if parts and parts[0] in ("integration", "e2e"):
            item.add_marker(getattr(pytest.mark, parts[0]))


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    db = os.environ.get("DATABASE_URL")
    kh = ph = None
    if not kafka:
        kh = devstack.start_kafka(ROOT)
        kafka = kh.bootstrap
    if not db:
        ph = devstack.start_postgres(ROOT)
        db = ph.url
    try:
        yield Stack(kafka, db, kh, ph)
    finally:
        if kh is not None:
            devstack.stop_kafka(kh)
        if ph is not None:
            devstack.stop_postgres(ph)
