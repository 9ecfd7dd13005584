"""Staff bearer tokens for any service's HTTP API: verify (and, for operators and tests, issue).

The tokens are the ones intake's staff use: JWT HS256 (PyJWT), issuer ``gridline``, keys as
``kid:secret`` pairs (the first signs, all verify, so keys rotate without a cliff), claims ``sub``,
``tenant``, ``role`` and for handling units ``unit``. Each service accepts its own audience list
and its own roles; the tenant of the token must be the tenant in the path (:func:`authorize`).

Errors are stable codes: 401 ``unauthenticated`` (no token), ``invalid_token``, ``token_expired``;
403 ``wrong_tenant``, ``role_not_allowed``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from .http import ApiError

ISSUER = "gridline"


@dataclass(frozen=True)
class Staff:
    id: str
    tenant: str
    role: str
    unit: str | None = None


def parse_keys(spec: str) -> list[tuple[str, str]]:
    pairs = []
    for part in spec.split(","):
        kid, _, secret = part.strip().partition(":")
        if not kid or len(secret) < 32:  # RFC 7518 §3.2: an HS256 key at least as long as the hash
            raise ValueError("staff token keys are kid:secret with secrets of 32+ characters")
        pairs.append((kid, secret))
    return pairs


class StaffTokenVerifier:
    """Checks signature, expiry, issuer, one of ``audiences`` and that the role is one of ``roles``."""

    def __init__(self, spec: str, *, audiences: Sequence[str], roles: Collection[str]) -> None:
        self._keys = parse_keys(spec)
        self._by_kid = dict(self._keys)
        self.audiences = list(audiences)
        self.roles = frozenset(roles)

    def verify(self, token: str) -> Staff:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            secret = self._by_kid.get(str(kid))
            if secret is None:
                raise jwt.InvalidTokenError("unknown kid")
            claims = jwt.decode(
                token,
                secret,
                algorithms=["HS256"],
                audience=self.audiences,
                issuer=ISSUER,
                options={"require": ["exp", "sub", "aud", "iss"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise ApiError(401, "token_expired", "登录已过期，请重新登录") from exc
        except jwt.InvalidTokenError as exc:
            raise ApiError(401, "invalid_token", "身份令牌无效") from exc
        tenant, role, unit = claims.get("tenant"), claims.get("role"), claims.get("unit")
        if not isinstance(tenant, str) or not isinstance(role, str):
            raise ApiError(401, "invalid_token", "身份令牌缺少租户或角色")
        if role not in self.roles:
            raise ApiError(403, "role_not_allowed", "该身份无权使用此接口")
        return Staff(str(claims["sub"]), tenant, role, unit if isinstance(unit, str) else None)

    def issue(
        self,
        *,
        sub: str,
        tenant: str,
        role: str,
        audience: str | None = None,
        unit: str | None = None,
        now: datetime | None = None,
        ttl: timedelta = timedelta(hours=8),
    ) -> str:
        """A token for operators' CLIs and tests; production tokens come from the city's identity service."""
        now = now or datetime.now(UTC)
        kid, secret = self._keys[0]
        claims: dict[str, Any] = {
            "sub": sub,
            "tenant": tenant,
            "role": role,
            "iss": ISSUER,
            "aud": audience or self.audiences[0],
            "iat": now,
            "exp": now + ttl,
        }
        if unit:
            claims["unit"] = unit
        return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": kid})


def bearer(verifier: StaffTokenVerifier | None, authorization: str | None) -> Staff:
    """The staff member behind an ``Authorization: Bearer …`` header; 401 when absent or bad."""
    if not authorization:
        raise ApiError(401, "unauthenticated", "请先登录")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip() or verifier is None:
        raise ApiError(401, "invalid_token", "身份令牌无效")
    return verifier.verify(token.strip())


def authorize(staff: Staff, tenant: str, roles: Collection[str]) -> Staff:
    """The staff member may act here: the path's tenant and one of ``roles``; else 403."""
    if staff.tenant != tenant:
        raise ApiError(403, "wrong_tenant", "无权访问其他地区的数据")
    if staff.role not in roles:
        raise ApiError(403, "role_not_allowed", "该身份无权使用此接口")
    return staff
