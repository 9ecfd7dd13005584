"""tools/devstack.py against the real thing: a Kafka broker and a PostgreSQL cluster on this machine.

Each test keeps its runs and state in its own tmp_path, so it never touches a stack that a
developer started with `devstack.py up`; the downloaded jars in .cache/ are shared.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import devstack  # noqa: E402


def test_kafka_survives_a_crash_and_restarts_on_the_same_port_and_data(tmp_path: Path) -> None:
    handle = devstack.start_kafka(ROOT, workdir=tmp_path)
    try:
        assert devstack.kafka_answering(handle.bootstrap)
        meta = (handle.data_dir / "meta.properties").read_text()

        devstack.kill_kafka(handle, signal.SIGKILL)
        assert not devstack.kafka_running(handle)
        assert not devstack.kafka_answering(handle.bootstrap)

        handle = devstack.restart_kafka(handle)
        assert devstack.kafka_answering(handle.bootstrap)
        assert (handle.data_dir / "meta.properties").read_text() == meta  # same cluster, not reformatted

        # A frozen broker does not answer, and stopping it still works.
        devstack.kill_kafka(handle, signal.SIGSTOP)
        assert not devstack.kafka_answering(handle.bootstrap, timeout=1.0)
    finally:
        devstack.stop_kafka(handle)
    assert not devstack.kafka_running(handle)
    assert not handle.run_dir.exists()


def test_postgres_keeps_committed_rows_across_a_crash(tmp_path: Path) -> None:
    handle = devstack.start_postgres(ROOT, workdir=tmp_path)
    try:
        assert handle.url == f"postgresql://gridline@127.0.0.1:{handle.port}/gridline"
        devstack.pg_query(handle.url, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")

        devstack.kill_postgres(handle, signal.SIGKILL)
        assert not devstack.postgres_answering(handle.url)

        restarted = devstack.restart_postgres(handle)
        assert restarted.port == handle.port
        assert restarted.pid != handle.pid
        assert devstack.pg_query(restarted.url, "SELECT x FROM kept") == [("42",)]
        handle = restarted
    finally:
        devstack.stop_postgres(handle)
    assert not devstack.postgres_running(handle)
    assert not handle.run_dir.exists()


def test_up_reuses_a_live_broker_and_down_removes_it(tmp_path: Path) -> None:
    first = devstack.up(ROOT, kafka=True, pg=False, workdir=tmp_path, environ={})
    try:
        again = devstack.up(ROOT, kafka=True, pg=False, workdir=tmp_path, environ={})
        assert again["kafka"]["handle"]["pid"] == first["kafka"]["handle"]["pid"]
        env = (tmp_path / "env").read_text()
        assert f"export KAFKA_BOOTSTRAP_SERVERS={first['kafka']['value']}" in env
    finally:
        devstack.down(ROOT, workdir=tmp_path)
    handle = devstack.KafkaHandle.from_json(first["kafka"]["handle"])
    assert not devstack.kafka_running(handle)
    assert not handle.run_dir.exists()
    assert not (tmp_path / "state.json").exists()


def test_up_starts_nothing_for_components_given_in_the_environment(tmp_path: Path) -> None:
    given = {
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
        "DATABASE_URL": "postgresql://someone@127.0.0.1:9/elsewhere",
    }
    state = devstack.up(ROOT, workdir=tmp_path, environ=given)
    assert state["kafka"] == {"external": True, "value": "127.0.0.1:9", "handle": None}
    assert state["postgres"]["handle"] is None
    assert (tmp_path / "env").read_text().splitlines() == [
        "export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9",
        "export DATABASE_URL=postgresql://someone@127.0.0.1:9/elsewhere",
    ]
    assert not any(tmp_path.glob("kafka-*")) and not any(tmp_path.glob("pg-*"))
    devstack.down(ROOT, workdir=tmp_path)  # only forgets them
    assert not (tmp_path / "state.json").exists()
