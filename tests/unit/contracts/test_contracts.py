"""Event contracts: wire format, decoding errors, schema compatibility and the generated catalogue."""

from __future__ import annotations

import json
import os
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gridline_contracts import catalogue
from gridline_contracts.compat import incompatibilities
from gridline_contracts.envelope import Envelope
from gridline_contracts.intake import ReporterRef, TicketReceivedV1
from gridline_contracts.registry import Undecodable, all_events, decode
from gridline_contracts.topics import ALL_TOPICS, DEAD_LETTER_TOPICS, EVENT_TOPICS, SERVICES, topic_for

SNAPSHOTS = Path(__file__).with_name("snapshots")
ROOT = Path(__file__).resolve().parents[3]


def _event() -> Envelope[TicketReceivedV1]:
    now = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)
    data = TicketReceivedV1(
        ticket_id=uuid.UUID(int=7),
        ticket_no="330106-20261122-000007",
        channel="citizen",
        category_code="200102",
        description="路边垃圾堆放",
        reported_at=now,
        received_at=now,
        reporter=ReporterRef(masked_phone="138****8000"),
    )
    return Envelope(source="intake", tenant="330106", subject=str(data.ticket_id), correlation_id="c-1", data=data)


def test_cloudevents_binary_binding_headers() -> None:
    env = _event()
    h = {k: v.decode() for k, v in env.headers()}
    assert h["ce_specversion"] == "1.0"
    assert h["ce_type"] == "cn.gridline.ticket.received.v1"
    assert h["ce_id"] == str(env.id)
    assert h["ce_source"] == "intake"
    assert h["ce_subject"] == str(uuid.UUID(int=7))
    assert h["ce_tenant"] == "330106"
    assert h["content-type"] == "application/json"
    assert datetime.fromisoformat(h["ce_time"]) == env.time
    assert json.loads(env.body())["ticket_no"] == "330106-20261122-000007"


def test_roundtrip() -> None:
    env = _event()
    back = decode(env.headers(), env.body())
    assert back is not None
    assert back.id == env.id and back.data == env.data and back.tenant == "330106"


def test_wire_type_does_not_depend_on_class_name() -> None:
    renamed = type("SomethingElse", (TicketReceivedV1,), {})
    assert renamed.ce_type() == TicketReceivedV1.ce_type()


def test_other_consumers_types_are_ignored_not_errors() -> None:
    from gridline_contracts.routing import DispatchAssignedV1

    env = _event()
    assert decode(env.headers(), env.body(), accept=[DispatchAssignedV1]) is None


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda h, b: ([x for x in h if x[0] != "ce_id"], b), "missing_attribute"),
        (lambda h, b: ([(k, b"0.3" if k == "ce_specversion" else v) for k, v in h], b), "bad_specversion"),
        (lambda h, b: ([(k, b"cn.gridline.nope.v1" if k == "ce_type" else v) for k, v in h], b), "unknown_type"),
        (lambda h, b: ([(k, b"ticket.received" if k == "ce_type" else v) for k, v in h], b), "bad_type"),
        (lambda h, b: ([(k, b"not-a-uuid" if k == "ce_id" else v) for k, v in h], b), "bad_id"),
        (lambda h, b: (h, b"\xff\xfe"), "bad_json"),
        (lambda h, b: (h, b'{"ticket_id": 3}'), "invalid_payload"),
        (lambda h, b: ([(k, b"\xff" if k == "ce_tenant" else v) for k, v in h], b), "bad_header"),
        (lambda h, b: (None, b), "missing_attribute"),
    ],
)
def test_undecodable_messages_have_stable_codes(mutate, code) -> None:  # type: ignore[no-untyped-def]
    env = _event()
    headers, body = mutate(env.headers(), env.body())
    with pytest.raises(Undecodable) as info:
        decode(headers, body)
    assert info.value.code == code


def test_topic_catalogue() -> None:
    names = [t.name for t in ALL_TOPICS]
    assert len(names) == len(set(names))
    for t in EVENT_TOPICS:
        assert re.fullmatch(r"(intake|routing|escalation|notify)\.[a-z]+\.v\d+", t.name)
        assert t.partitions >= 1
    assert {t.name for t in DEAD_LETTER_TOPICS} == {f"{s}.dead-letter.v1" for s in SERVICES}
    owner_of_family = {
        "ticket": "intake",
        "dispatch": "routing",
        "directory": "routing",
        "sla": "escalation",
        "supervision": "escalation",
        "review": "escalation",
        "notification": "notify",
    }
    for cls in all_events():
        assert topic_for(cls).owner == owner_of_family[cls.TYPE.split(".")[0]], cls.TYPE


@pytest.mark.parametrize("cls", all_events(), ids=lambda c: c.ce_type())
def test_schema_snapshot_is_compatible(cls) -> None:  # type: ignore[no-untyped-def]
    """Fails on an incompatible change to a published (type, version). Additive optional fields pass.

    A new event: run with UPDATE_SNAPSHOTS=1 once and commit the snapshot. A breaking change: add a
    new class with VERSION + 1 instead of editing this one.
    """
    path = SNAPSHOTS / f"{cls.TYPE}.v{cls.VERSION}.json"
    current = cls.model_json_schema()
    if not path.exists() or os.environ.get("UPDATE_SNAPSHOTS") == "1":
        if os.environ.get("UPDATE_SNAPSHOTS") != "1":
            pytest.fail(f"no snapshot for {cls.ce_type()}: run UPDATE_SNAPSHOTS=1 pytest {__file__}")
        previous = json.loads(path.read_text()) if path.exists() else None
        if previous is not None:
            assert not incompatibilities(previous, current), "refusing to overwrite with an incompatible schema"
        path.write_text(json.dumps(current, indent=2, ensure_ascii=False, sort_keys=True) + "\n")
    old = json.loads(path.read_text())
    problems = incompatibilities(old, current)
    assert not problems, f"{cls.ce_type()} changed incompatibly: {problems}; publish VERSION + 1 instead"


def test_compat_checker_catches_breaking_changes() -> None:
    old = {
        "properties": {"a": {"type": "string"}, "b": {"type": "integer"}, "c": {"enum": ["x", "y"]}},
        "required": ["a"],
    }
    assert incompatibilities(old, old) == []
    additive = {**old, "properties": {**old["properties"], "d": {"type": "string"}}}
    assert incompatibilities(old, additive) == []
    removed = {"properties": {"a": {"type": "string"}, "c": {"enum": ["x", "y"]}}, "required": ["a"]}
    assert incompatibilities(old, removed) == ["b: removed"]
    retyped = {**old, "properties": {**old["properties"], "b": {"type": "string"}}}
    assert incompatibilities(old, retyped) == ["b: no longer accepts ['integer']"]
    required = {**old, "required": ["a", "b"]}
    assert incompatibilities(old, required) == ["b: newly required"]
    narrowed = {**old, "properties": {**old["properties"], "c": {"enum": ["x"]}}}
    assert incompatibilities(old, narrowed) == ["c: no longer accepts ['enum:y']"]


def test_generated_catalogue_is_up_to_date() -> None:
    doc = ROOT / "docs" / "events.md"
    assert doc.exists(), "run `make catalogue`"
    assert doc.read_text(encoding="utf-8") == catalogue.render(), "docs/events.md is stale: run `make catalogue`"
