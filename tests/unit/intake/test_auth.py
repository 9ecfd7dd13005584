from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gridline_boot.http import ApiError
from intake.auth import Integration, StaffTokens, check_signed, signature

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
HZ = Integration(id="hz12345", tenant="330106", secret="CRUNCHY-ARMCHAIR-secret")


def check(**kw: object) -> Integration:
    ts = str(int(NOW.timestamp()))
    args: dict[str, object] = {
        "api_key": "hz12345",
        "timestamp": ts,
        "nonce": "n-0123456789",
        "sig": signature(HZ.secret, ts, "n-0123456789", b'{"a":1}'),
        "body": b'{"a":1}',
        "now": NOW,
        "max_skew": timedelta(minutes=5),
    }
    args.update(kw)
    return check_signed({"hz12345": HZ}, **args)  # type: ignore[arg-type]


def test_signature_covers_timestamp_nonce_and_body() -> None:
    assert check() is HZ
    for kw, code in [
        ({"body": b'{"a":2}'}, "bad_signature"),
        ({"nonce": "n-9999999999"}, "bad_signature"),
        ({"now": NOW + timedelta(minutes=6)}, "stale_request"),
        ({"timestamp": "yesterday"}, "invalid_timestamp"),
        ({"api_key": "nobody"}, "unknown_api_key"),
        ({"sig": None}, "signature_required"),
        ({"nonce": "short"}, "invalid_nonce"),
    ]:
        with pytest.raises(ApiError) as info:
            check(**kw)
        assert info.value.code == code and info.value.status == 401


def test_staff_tokens_rotate_and_carry_tenant_unit_role() -> None:
    old = StaffTokens("k1:old-secret-0123456789-0123456789-xyz")
    token = old.issue(sub="u-1", tenant="330106", role="unit", unit="330106-CGJ", now=datetime.now(UTC))
    rotated = StaffTokens("k2:new-secret-0123456789-0123456789-xyz,k1:old-secret-0123456789-0123456789-xyz")
    p = rotated.verify(token)
    assert (p.tenant, p.role, p.unit_code, p.actor.unit_code) == ("330106", "unit", "330106-CGJ", "330106-CGJ")
    assert rotated.verify(rotated.issue(sub="p", tenant="330106", role="platform")).role == "platform"
    with pytest.raises(ApiError, match="invalid_token"):
        StaffTokens("k2:new-secret-0123456789-0123456789-xyz").verify(token)  # k1 retired


def test_unit_tokens_need_a_unit() -> None:
    import jwt

    t = jwt.encode(
        {
            "sub": "x",
            "tenant": "330106",
            "role": "unit",
            "iss": "gridline",
            "aud": "gridline-intake",
            "exp": datetime.now(UTC) + timedelta(hours=1),
        },
        "old-secret-0123456789-0123456789-xyz",
        headers={"kid": "k1"},
    )
    with pytest.raises(ApiError, match="invalid_token"):
        StaffTokens("k1:old-secret-0123456789-0123456789-xyz").verify(t)
