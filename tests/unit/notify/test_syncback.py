"""12345 sync-back: payloads, signing, acknowledgement rules, backoff — and the fake platform's checks."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from gridline_contracts.intake import (
    ReporterRef,
    TicketClosedV1,
    TicketDispatchedV1,
    TicketRepliedV1,
    TicketSignedV1,
)
from gridline_fakes import hotline12345
from intake import auth as intake_auth
from notify import syncback
from notify import syncback_domain as sd

SECRET = "test-hotline-secret-0001"
ORDER = sd.Order("330106", "hotline-hz", "GD2026112200001", uuid.uuid4(), "330106-20261122-0001")
AT = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)


def test_signature_is_the_documented_hmac_and_mirrors_intakes_inbound_scheme() -> None:
    body = b'{"order_no":"GD2026112200001"}'
    sig = sd.signature(SECRET, "1763790000", "abcdef0123456789", body)
    # hex(HMAC-SHA256(secret, "1763790000\nabcdef0123456789\n" + body)), pinned.
    assert sig == "ecdc71400434ddab4ee6e1a7b006ace9dcb05dc8396d061b178770a8977eecae"
    assert sig == intake_auth.signature(SECRET, "1763790000", "abcdef0123456789", body)
    assert sig == hotline12345.expected_signature(SECRET, "1763790000", "abcdef0123456789", body)


def test_signed_headers_carry_key_time_nonce_signature_and_idempotency_key() -> None:
    h = sd.signed_headers(
        api_key="gridline", secret=SECRET, idempotency_key="k-1", body=b"{}", timestamp=1763790000, nonce="n" * 16
    )
    assert h["X-Api-Key"] == "gridline" and h["X-Timestamp"] == "1763790000" and h["Idempotency-Key"] == "k-1"
    assert h["X-Signature"] == sd.signature(SECRET, "1763790000", "n" * 16, b"{}")


def _transition(cls: Any, **extra: Any) -> Any:
    return cls(
        ticket_id=ORDER.ticket_id,
        ticket_no=ORDER.ticket_no,
        from_status=extra.pop("from_status", "dispatched"),
        to_status=extra.pop("to_status", "accepted"),
        actor_role="unit",
        actor="U-1",
        at=AT,
        unit_code="U-1",
        **extra,
    )


def test_transition_payload_has_status_in_both_languages_and_the_results() -> None:
    signed = sd.transition_payload("ticket.signed", _transition(TicketSignedV1), ORDER)
    assert signed["order_no"] == "GD2026112200001" and signed["ticket_no"] == ORDER.ticket_no
    assert (signed["status"], signed["status_name"], signed["from_status"]) == ("accepted", "已签收", "dispatched")
    assert signed["at"] == AT.isoformat() and "reply" not in signed
    replied = sd.transition_payload(
        "ticket.replied",
        _transition(TicketRepliedV1, from_status="accepted", to_status="replied", reply="已清理", photo_count=2),
        ORDER,
    )
    assert (replied["reply"], replied["photo_count"], replied["status_name"]) == ("已清理", 2, "已回复")
    closed = sd.transition_payload(
        "ticket.closed",
        _transition(TicketClosedV1, from_status="pending_callback", to_status="closed", satisfaction="satisfied"),
        ORDER,
    )
    assert (closed["satisfaction"], closed["status_name"]) == ("satisfied", "办结")
    assert "resolved" not in closed  # None fields are left out


def test_dispatched_payload_names_the_unit_and_a_reassignment() -> None:
    def dispatched(previous: str | None) -> Any:
        return TicketDispatchedV1(
            ticket_id=ORDER.ticket_id,
            ticket_no=ORDER.ticket_no,
            category_code="200102",
            unit_code="U-2",
            co_unit_codes=["U-3"],
            sla_policy_key="standard-5wd",
            dispatched_at=AT,
            reporter=ReporterRef(),
            previous_unit_code=previous,
        )

    first = sd.dispatched_payload("ticket.dispatched", dispatched(None), ORDER)
    assert (first["status"], first["status_name"], first["unit_code"]) == ("dispatched", "已派单", "U-2")
    assert first["co_unit_codes"] == ["U-3"] and "previous_unit_code" not in first
    again = sd.dispatched_payload("ticket.dispatched", dispatched("U-1"), ORDER)
    assert (again["status_name"], again["previous_unit_code"]) == ("改派", "U-1")
    assert syncback.transition_handlers()[TicketDispatchedV1] is syncback.on_dispatched


def test_received_payload_and_request_body() -> None:
    p = sd.received_payload("ticket.received", AT, ORDER)
    assert (p["status"], p["status_name"]) == ("received", "已受理")
    ev = uuid.uuid4()
    body = json.loads(sd.request_body(p, sequence=7, event_id=ev))
    assert body["sequence"] == 7 and body["event_id"] == str(ev) and body["order_no"] == ORDER.external_id


def test_item_key_is_one_per_event_and_order() -> None:
    ev = uuid.uuid4()
    assert sd.item_key(ev, ORDER) == sd.item_key(ev, ORDER)
    other = sd.Order("330106", "hotline-hz", "GD2026112200002", ORDER.ticket_id, ORDER.ticket_no)
    assert sd.item_key(ev, ORDER) != sd.item_key(ev, other)
    assert sd.item_key(ev, ORDER) != sd.item_key(uuid.uuid4(), ORDER)


@pytest.mark.parametrize(
    ("status", "body", "acked", "code"),
    [
        (200, b'{"code":0,"msg":"\xe6\x88\x90\xe5\x8a\x9f"}', True, "ack"),
        (201, b'{"code":"0"}', True, "ack"),
        (200, b'{"code":5000,"msg":"busy"}', False, "nack.5000"),
        (200, b"OK", False, "no_ack_body"),
        (200, b"", False, "no_ack_body"),
        (503, b'{"code":0}', False, "http.503"),  # an ack body on an error status is no ack
        (401, b'{"code":4014,"msg":"bad"}', False, "http.401"),
    ],
)
def test_only_a_2xx_with_code_zero_is_an_acknowledgement(status: int, body: bytes, acked: bool, code: str) -> None:
    a = sd.classify(status, body)
    assert (a.acked, a.code) == (acked, code)


def test_backoff_grows_exponentially_with_full_jitter_and_a_cap() -> None:
    assert sd.backoff_s(1, 1.0, 300, 1.0) == 1.0
    assert sd.backoff_s(4, 1.0, 300, 1.0) == 8.0
    assert sd.backoff_s(30, 1.0, 300, 1.0) == 300
    assert sd.backoff_s(4, 1.0, 300, 0.5) == 4.0
    assert sd.backoff_s(4, 1.0, 300, 0.0) == 0.1  # floor: never a hot loop


def test_every_transition_is_routed_to_syncback() -> None:
    table = syncback.transition_handlers()
    assert TicketSignedV1 in table and TicketClosedV1 in table and len(table) == len(syncback.TRANSITIONS) + 1


def test_endpoint_config_rejects_weak_secrets_and_non_http_urls() -> None:
    ok = {"tenant": "330106", "integration": "h", "url": "https://p.example/cb", "api_key": "g"}
    syncback.EndpointConfig(**ok, secret="s" * 16)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        syncback.EndpointConfig(**ok, secret="short")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        syncback.EndpointConfig(**{**ok, "url": "ftp://p.example/cb"}, secret="s" * 16)  # type: ignore[arg-type]
    assert "s" * 16 not in repr(syncback.EndpointConfig(**ok, secret="s" * 16))  # type: ignore[arg-type]


# -- the fake platform ----------------------------------------------------------------------------


def _client() -> httpx.AsyncClient:
    app = hotline12345.create_app({"gridline": SECRET})
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://platform")


def _signed(body: dict[str, Any], key: str, *, ts: int | None = None, nonce: str | None = None) -> dict[str, Any]:
    raw = json.dumps(body).encode()
    headers = sd.signed_headers(
        api_key="gridline",
        secret=SECRET,
        idempotency_key=key,
        body=raw,
        timestamp=ts if ts is not None else int(time.time()),
        nonce=nonce or uuid.uuid4().hex,
    )
    return {"content": raw, "headers": headers}


async def test_fake_acks_valid_pushes_and_records_each_key_once() -> None:
    async with _client() as c:
        r = await c.post("/callback", **_signed({"order_no": "A1", "sequence": 1, "status": "received"}, "k1"))
        assert (r.status_code, r.json()) == (200, {"code": 0, "msg": "成功"})
        again = await c.post("/callback", **_signed({"order_no": "A1", "sequence": 1, "status": "received"}, "k1"))
        assert again.json()["duplicate"] is True
        received = (await c.get("/_fake/received")).json()
        assert [(m["order_no"], m["idempotency_key"]) for m in received] == [("A1", "k1")]
        assert (await c.get("/_fake/stats")).json()["duplicates"] == 1


async def test_fake_rejects_stale_replayed_and_badly_signed_requests() -> None:
    async with _client() as c:
        stale = await c.post("/callback", **_signed({"order_no": "A1"}, "k1", ts=int(time.time()) - 301))
        assert (stale.status_code, stale.json()["code"]) == (401, 4012)
        req = _signed({"order_no": "A1"}, "k2", nonce="fixed-nonce-0001")
        assert (await c.post("/callback", **req)).status_code == 200
        replay = await c.post("/callback", **_signed({"order_no": "A1"}, "k3", nonce="fixed-nonce-0001"))
        assert (replay.status_code, replay.json()["code"]) == (401, 4013)
        tampered = _signed({"order_no": "A1"}, "k4")
        tampered["content"] = b'{"order_no":"A2"}'
        bad = await c.post("/callback", **tampered)
        assert (bad.status_code, bad.json()["code"]) == (401, 4014)
        unknown = _signed({"order_no": "A1"}, "k5")
        unknown["headers"]["X-Api-Key"] = "someone"
        assert (await c.post("/callback", **unknown)).json()["code"] == 4011
        no_key = _signed({"order_no": "A1"}, "")
        assert (await c.post("/callback", **no_key)).json()["code"] == 4001
        assert [m["idempotency_key"] for m in (await c.get("/_fake/received")).json()] == ["k2"]


async def test_fake_faults_and_out_of_order_detection() -> None:
    async with _client() as c:
        await c.post("/_fake/faults", json={"kind": "server_error", "count": 1})
        await c.post("/_fake/faults", json={"kind": "nack", "count": 1})
        r1 = await c.post("/callback", **_signed({"order_no": "B", "sequence": 5}, "s5"))
        r2 = await c.post("/callback", **_signed({"order_no": "B", "sequence": 5}, "s5"))
        assert sd.classify(r1.status_code, r1.content).code == "http.503"
        assert sd.classify(r2.status_code, r2.content).code == "nack.5000"
        assert (await c.get("/_fake/received")).json() == []
        for seq in (5, 3):
            assert (await c.post("/callback", **_signed({"order_no": "B", "sequence": seq}, f"s{seq}"))).is_success
        assert (await c.get("/_fake/stats")).json()["out_of_order"] == 1
