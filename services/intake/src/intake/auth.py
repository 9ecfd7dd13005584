"""Who is calling: staff by signed tokens, integrations by API key + HMAC signature.

Staff tokens are JWTs (HS256, PyJWT) issued by the city's identity service (or ``python -m intake
issue-token`` for operators) and carry ``tenant``, ``role`` and, for handling units, ``unit``. Keys
are ``kid:secret`` pairs; the first signs, all verify, so a key can be rotated without a cliff.

Integrations (a 12345 platform, a mini-program backend, an Open311 client) send::

    X-Api-Key: <integration id>
    X-Timestamp: <unix seconds>
    X-Nonce: <8-64 chars, unique per request>
    X-Signature: hex(HMAC-SHA256(secret, timestamp + "\\n" + nonce + "\\n" + raw body))

A timestamp outside ``±signature_max_skew_s`` is stale; a nonce seen before is a replay (nonces are
kept in PostgreSQL for twice the skew window, so every API replica sees them).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gridline_boot.http import ApiError
from gridline_boot.staff_auth import StaffTokenVerifier

from .domain import Actor

Scope = Literal["submit", "read_own", "act_as_unit"]
StaffRole = Literal["unit", "grid_staff", "platform", "dispatcher", "supervisor"]
ISSUER = "gridline"
AUDIENCE = "gridline-intake"


class Integration(BaseModel):
    """One integration's credentials, from settings (``INTEGRATIONS`` JSON list)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{3,64}$")
    tenant: str = Field(pattern=r"^\d{6}$")
    secret: str = Field(min_length=16)
    kind: Literal["hotline", "citizen", "open311"] = "hotline"
    scopes: frozenset[Scope] = frozenset({"submit", "read_own"})
    unit_code: str | None = None  # for act_as_unit: the unit it acts for
    rate_per_minute: int = Field(default=600, ge=1)


@dataclass(frozen=True)
class Principal:
    kind: Literal["staff", "integration"]
    id: str
    tenant: str
    role: str
    unit_code: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    integration: Integration | None = None

    @property
    def actor(self) -> Actor:
        if self.kind == "integration":
            if "act_as_unit" in self.scopes:
                return Actor(role="unit", id=f"integration:{self.id}", unit_code=self.unit_code)
            return Actor(role="hotline", id=f"integration:{self.id}")
        return Actor(role=self.role, id=self.id, unit_code=self.unit_code)  # type: ignore[arg-type]


STAFF_ROLES: tuple[StaffRole, ...] = ("unit", "grid_staff", "platform", "dispatcher", "supervisor")


class StaffTokens:
    """Intake's view of the shared staff tokens (gridline_boot.staff_auth): its audience, its roles,
    and the rule that a handling unit's token names its unit."""

    def __init__(self, spec: str, ttl: timedelta = timedelta(hours=8)) -> None:
        self._tokens = StaffTokenVerifier(spec, audiences=[AUDIENCE], roles=STAFF_ROLES)
        self.ttl = ttl

    def issue(
        self, *, sub: str, tenant: str, role: StaffRole, unit: str | None = None, now: datetime | None = None
    ) -> str:
        return self._tokens.issue(sub=sub, tenant=tenant, role=role, unit=unit, now=now, ttl=self.ttl)

    def verify(self, token: str) -> Principal:
        try:
            staff = self._tokens.verify(token)
        except ApiError as exc:
            if exc.code == "role_not_allowed":  # a role intake does not know: the token is not for it
                raise ApiError(401, "invalid_token", "身份令牌缺少租户或角色") from exc
            raise
        if staff.role in ("unit", "grid_staff") and not staff.unit:
            raise ApiError(401, "invalid_token", "承办单位令牌缺少单位编码")
        return Principal("staff", staff.id, staff.tenant, staff.role, staff.unit)


def signature(secret: str, timestamp: str, nonce: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}\n{nonce}\n".encode() + body, hashlib.sha256)
    return mac.hexdigest()


def parse_integrations(raw: str) -> Mapping[str, Integration]:
    items = [Integration.model_validate(x) for x in json.loads(raw or "[]")]
    return {i.id: i for i in items}


def check_signed(
    integrations: Mapping[str, Integration],
    *,
    api_key: str | None,
    timestamp: str | None,
    nonce: str | None,
    sig: str | None,
    body: bytes,
    now: datetime,
    max_skew: timedelta,
) -> Integration:
    """Verify key, freshness and signature (the nonce is checked against the database by the caller)."""
    if not api_key or not timestamp or not nonce or not sig:
        raise ApiError(401, "signature_required", "缺少 X-Api-Key、X-Timestamp、X-Nonce 或 X-Signature")
    integration = integrations.get(api_key)
    if integration is None:
        raise ApiError(401, "unknown_api_key", "API Key 无效")
    try:
        at = datetime.fromtimestamp(int(timestamp), UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise ApiError(401, "invalid_timestamp", "X-Timestamp 须为 Unix 秒") from exc
    if abs(now - at) > max_skew:
        raise ApiError(401, "stale_request", "请求时间戳已过期或超前，请校准时钟")
    if not 8 <= len(nonce) <= 64 or not nonce.isascii():
        raise ApiError(401, "invalid_nonce", "X-Nonce 须为 8–64 位 ASCII 字符")
    if not hmac.compare_digest(signature(integration.secret, timestamp, nonce, body), sig.lower()):
        raise ApiError(401, "bad_signature", "签名校验失败")
    return integration
