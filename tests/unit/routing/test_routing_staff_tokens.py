"""The staff-token verifier routing uses (gridline_boot.staff_auth): intake-compatible tokens, key
rotation, audiences, roles and tenants, each failure with its stable code."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import pytest

from gridline_boot.http import ApiError
from gridline_boot.staff_auth import StaffTokenVerifier, authorize, bearer
from intake.auth import StaffTokens
from routing.api import ROLES

OLD, NEW = f"k1:{secrets.token_urlsafe(32)}", f"k2:{secrets.token_urlsafe(32)}"
AUDIENCES = ["gridline-routing", "gridline-intake"]


def code(exc: pytest.ExceptionInfo[ApiError]) -> tuple[int, str]:
    return exc.value.status, exc.value.code


def test_a_token_signed_by_intake_is_accepted_with_its_claims() -> None:
    verifier = StaffTokenVerifier(OLD, audiences=AUDIENCES, roles=ROLES)
    token = StaffTokens(OLD).issue(sub="d-wang", tenant="330110", role="dispatcher")
    staff = verifier.verify(token)
    assert (staff.id, staff.tenant, staff.role, staff.unit) == ("d-wang", "330110", "dispatcher", None)


def test_rotation_older_keys_still_verify_and_unknown_keys_do_not() -> None:
    rotated = StaffTokenVerifier(f"{NEW},{OLD}", audiences=AUDIENCES, roles=ROLES)
    old_token = StaffTokenVerifier(OLD, audiences=AUDIENCES, roles=ROLES).issue(sub="a", tenant="330110", role="admin")
    assert rotated.verify(old_token).role == "admin"
    only_new = StaffTokenVerifier(NEW, audiences=AUDIENCES, roles=ROLES)
    with pytest.raises(ApiError) as err:
        only_new.verify(old_token)
    assert code(err) == (401, "invalid_token")
    with pytest.raises(ValueError):
        StaffTokenVerifier("k1:short", audiences=AUDIENCES, roles=ROLES)


def test_expiry_audience_and_role() -> None:
    verifier = StaffTokenVerifier(OLD, audiences=AUDIENCES, roles=ROLES)
    expired = verifier.issue(sub="d", tenant="330110", role="dispatcher", now=datetime.now(UTC) - timedelta(days=1))
    with pytest.raises(ApiError) as err:
        verifier.verify(expired)
    assert code(err) == (401, "token_expired")
    elsewhere = verifier.issue(sub="d", tenant="330110", role="dispatcher", audience="gridline-notify")
    with pytest.raises(ApiError) as err:
        verifier.verify(elsewhere)
    assert code(err) == (401, "invalid_token")
    unit = StaffTokens(OLD).issue(sub="u", tenant="330110", role="unit", unit="330110-CGJ")
    with pytest.raises(ApiError) as err:
        verifier.verify(unit)
    assert code(err) == (403, "role_not_allowed")


def test_header_tenant_and_role_checks() -> None:
    verifier = StaffTokenVerifier(OLD, audiences=AUDIENCES, roles=ROLES)
    token = verifier.issue(sub="d", tenant="330110", role="dispatcher")
    for header, expected in ((None, "unauthenticated"), ("", "unauthenticated"), (f"Token {token}", "invalid_token")):
        with pytest.raises(ApiError) as err:
            bearer(verifier, header)
        assert code(err) == (401, expected)
    with pytest.raises(ApiError) as err:
        bearer(None, f"Bearer {token}")  # no keys configured: nothing verifies
    assert code(err) == (401, "invalid_token")
    staff = bearer(verifier, f"Bearer {token}")
    assert authorize(staff, "330110", ("dispatcher",)) is staff
    with pytest.raises(ApiError) as err:
        authorize(staff, "330106", ("dispatcher",))
    assert code(err) == (403, "wrong_tenant")
    with pytest.raises(ApiError) as err:
        authorize(staff, "330110", ("admin",))
    assert code(err) == (403, "role_not_allowed")
