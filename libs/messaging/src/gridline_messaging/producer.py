"""The one producer a process owns: idempotent, acks=all, so a retried send never duplicates or reorders."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer


def make_producer(bootstrap_servers: str, client_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        enable_idempotence=True,  # implies acks="all" and one in-flight batch per partition
        linger_ms=2,
        max_batch_size=65536,
        request_timeout_ms=15_000,
    )
