"""Fault injection under load: services, Kafka and PostgreSQL killed, the SMS provider down, poison
messages. After each, every accepted report exists exactly once in its final state (dispatched,
clocked, both SMS sent), no SMS went out twice, and the system recovered within RECOVERY_S."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
import uuid
from collections.abc import Callable

import devstack
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from .conftest import RATE, RECOVERY_S, SECONDS, FaultStack
from .harness import Load, Report, assert_exactly_once, wait_final

SERVICES = ("intake", "routing", "escalation", "notify")


def run_load(
    fs: FaultStack, tag: str, fault: Callable[[], None], *, min_accepted: float = 0.3
) -> tuple[list[Report], float]:
    """Load for SECONDS with `fault()` started half-way in its own thread (the load goes on while
    it lasts); returns the accepted reports and the moment the fault was over, from which recovery
    is timed. At least `min_accepted` of the offered reports must have been accepted, so that a
    scenario cannot pass on an empty run."""
    load = Load(fs.services.procs["intake"].url, RATE, tag).start()
    time.sleep(SECONDS / 2)
    started = time.monotonic()
    injector = threading.Thread(target=fault, name="fault")
    injector.start()
    time.sleep(SECONDS / 2)
    injector.join()
    over = time.monotonic()
    reports = load.stop()
    assert not load.refused, f"intake refused valid reports: {load.refused[:3]}"
    assert load.abandoned == 0, f"{load.abandoned} reports never accepted"
    assert len(reports) >= RATE * SECONDS * min_accepted, f"only {len(reports)} reports accepted"
    print(
        f"\n{tag}: fault lasted {over - started:.1f}s; {len(reports)} reports accepted, {load.retries} client retries"
    )
    return reports, over


def settle(fs: FaultStack, reports: list[Report], tag: str, since: float, *, allow_ambiguous: bool = False) -> None:
    wait_final(fs.services, reports, RECOVERY_S, allow_ambiguous=allow_ambiguous)
    recovery = time.monotonic() - since
    counts = assert_exactly_once(fs.services, reports, tag)
    print(f"{tag}: final state {recovery:.1f}s after the fault ended; {json.dumps(counts)}")
    assert recovery <= RECOVERY_S


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("service", SERVICES)
def test_sigkill_a_service_during_load(faults: FaultStack, service: str) -> None:
    s = faults.services

    def crash_and_restart() -> None:
        s.kill(service, signal.SIGKILL)
        time.sleep(1)
        s.start(service)
        s.wait_ready((service,))

    tag = uid(f"kill-{service}")
    reports, since = run_load(faults, tag, crash_and_restart)
    # notify killed mid-call leaves that send `ambiguous` by design: never resent blindly.
    settle(faults, reports, tag, since, allow_ambiguous=service == "notify")


def test_kafka_sigkill_and_restart(faults: FaultStack) -> None:
    def crash_and_restart() -> None:
        devstack.kill_kafka(faults.kafka)
        time.sleep(2)
        faults.kafka = devstack.restart_kafka(faults.kafka)

    tag = uid("kafka")
    reports, since = run_load(faults, tag, crash_and_restart)
    settle(faults, reports, tag, since)
    faults.services.wait_ready(tuple(SERVICES), timeout=RECOVERY_S)


def test_sms_provider_outage(faults: FaultStack) -> None:
    fake = faults.services.procs["fake-sms"].url
    outage = {"kind": "server_error", "count": int(RATE * SECONDS)}  # every send for a while answers 503

    def provider_down() -> None:
        httpx.post(fake + "/_fake/faults", json=outage, timeout=5).raise_for_status()

    tag = uid("sms-outage")
    reports, _ = run_load(faults, tag, provider_down)
    since = time.monotonic()
    while httpx.get(fake + "/_fake/faults", timeout=5).json():  # outage lasts until its count is used up
        assert time.monotonic() - since < RECOVERY_S, "the outage was never consumed: notify stopped trying"
        time.sleep(0.5)
    settle(faults, reports, tag, time.monotonic())


def test_poison_messages_are_dead_lettered_and_the_pipeline_carries_on(faults: FaultStack) -> None:
    s = faults.services
    before = dead_letters(s)

    async def poison() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=faults.kafka.bootstrap)
        await producer.start()
        try:
            key = str(uuid.uuid4()).encode()
            await producer.send_and_wait("intake.tickets.v1", b"{not json", key=key)  # no CloudEvents headers

            def headers(ce_type: bytes) -> list[tuple[str, bytes]]:
                return [
                    ("ce_id", str(uuid.uuid4()).encode()),
                    ("ce_type", ce_type),
                    ("ce_source", b"intake"),
                    ("ce_specversion", b"1.0"),
                    ("ce_time", b"2026-01-01T00:00:00+00:00"),
                    ("ce_tenant", b"330106"),
                    ("ce_subject", key),
                ]

            # Well-formed envelope, payload that does not validate; then a body that is not JSON.
            received = headers(b"cn.gridline.ticket.received.v1")
            await producer.send_and_wait("intake.tickets.v1", b'{"ticket_id": 42}', key=key, headers=received)
            assigned = headers(b"cn.gridline.dispatch.assigned.v1")
            await producer.send_and_wait("routing.dispatch.v1", b"\xff\xfe", key=key, headers=assigned)
        finally:
            await producer.stop()

    def inject() -> None:
        asyncio.run(poison())

    tag = uid("poison")
    reports, since = run_load(faults, tag, inject)
    settle(faults, reports, tag, since)
    after = dead_letters(s)
    grew = {svc for svc in SERVICES if after.get(svc, 0) > before.get(svc, 0)}
    # routing, escalation and notify read intake.tickets.v1; intake reads routing.dispatch.v1.
    assert grew == set(SERVICES), (before, after)


# Last on purpose: when it fails, the consumers it leaves stuck would fail every later test too.
def test_postgres_crash_and_restart(faults: FaultStack) -> None:
    def crash_and_restart() -> None:
        devstack.kill_postgres(faults.pg)  # SIGKILL to the whole cluster: crash recovery on start
        time.sleep(2)
        faults.pg = devstack.restart_postgres(faults.pg)

    tag = uid("postgres")
    # intake cannot accept anything while its database is down (clients get 503 and retry), so
    # fewer reports get through than in the other scenarios.
    reports, since = run_load(faults, tag, crash_and_restart, min_accepted=0.15)
    settle(faults, reports, tag, since)
    faults.services.wait_ready(tuple(SERVICES), timeout=RECOVERY_S)


def dead_letters(s: object) -> dict[str, float]:
    out: dict[str, float] = {}
    for svc in SERVICES:
        text = httpx.get(s.procs[svc].url + "/metrics", timeout=5).text  # type: ignore[attr-defined]
        out[svc] = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("gridline_dead_letters_total{")
        )
    return out
