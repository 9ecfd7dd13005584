"""FastAPI dependencies that authenticate callers, check tenant and unit, and apply rate limits."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy import delete, func
from sqlalchemy.dialects.postgresql import insert

from gridline_boot.http import ApiError
from gridline_pii import lookup_hash

from . import store
from .auth import Principal, check_signed
from .deps import Deps
from .inputs import TenantPath


class RateLimited(ApiError):
    """429 with a Retry-After header (rendered by the handler app.py installs)."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(429, "rate_limited", "请求过于频繁，请稍后再试", {"retry_after_s": retry_after_s})
        self.retry_after_s = retry_after_s


def get_deps(request: Request) -> Deps:
    deps: Deps = request.app.state.deps
    return deps


DepsDep = Annotated[Deps, Depends(get_deps)]


async def rate_limit(deps: Deps, key: str, limit: int, window: timedelta, now: datetime) -> None:
    """Fixed-window counter in PostgreSQL (shared by every API replica); 429 with Retry-After."""
    span = int(window.total_seconds())
    start = datetime.fromtimestamp(int(now.timestamp()) // span * span, UTC)
    async with deps.sessions() as s, s.begin():
        count = (
            await s.execute(
                insert(store.rate_counter)
                .values(key=key, window_start=start, count=1)
                .on_conflict_do_update(
                    index_elements=["key", "window_start"], set_={"count": store.rate_counter.c.count + 1}
                )
                .returning(store.rate_counter.c.count)
            )
        ).scalar_one()
        if random.random() < 0.01:  # old windows are useless; sweep now and then, not on every call
            await s.execute(delete(store.rate_counter).where(store.rate_counter.c.window_start < start - window))
    if count > limit:
        retry = max(1, int((start + window - now).total_seconds()) + 1)
        raise RateLimited(retry)


async def _claim_nonce(deps: Deps, integration: str, nonce: str, now: datetime) -> bool:
    async with deps.sessions() as s, s.begin():
        got = (
            await s.execute(
                insert(store.request_nonce)
                .values(integration=integration, nonce=nonce, seen_at=func.now())
                .on_conflict_do_nothing()
                .returning(store.request_nonce.c.nonce)
            )
        ).first()
        if random.random() < 0.01:
            await s.execute(delete(store.request_nonce).where(store.request_nonce.c.seen_at < now - 2 * deps.max_skew))
    return got is not None


async def signed_integration(
    request: Request,
    deps: DepsDep,
    x_api_key: Annotated[str | None, Header(max_length=64)] = None,
    x_timestamp: Annotated[str | None, Header(max_length=20)] = None,
    x_nonce: Annotated[str | None, Header(max_length=64)] = None,
    x_signature: Annotated[str | None, Header(max_length=128)] = None,
) -> Principal:
    now = datetime.now(UTC)
    body = await request.body()
    integration = check_signed(
        deps.integrations or {},
        api_key=x_api_key,
        timestamp=x_timestamp,
        nonce=x_nonce,
        sig=x_signature,
        body=body,
        now=now,
        max_skew=deps.max_skew,
    )
    assert x_nonce is not None
    if not await _claim_nonce(deps, integration.id, x_nonce, now):
        raise ApiError(401, "replayed_request", "重复的请求（X-Nonce 已使用）")
    await rate_limit(deps, f"integration:{integration.id}", integration.rate_per_minute, timedelta(minutes=1), now)
    return Principal(
        "integration",
        integration.id,
        integration.tenant,
        integration.kind,
        integration.unit_code,
        frozenset(integration.scopes),
        integration,
    )


async def caller(
    request: Request,
    deps: DepsDep,
    tenant: TenantPath,
    authorization: Annotated[str | None, Header(max_length=4096)] = None,
    x_api_key: Annotated[str | None, Header(max_length=64)] = None,
    x_timestamp: Annotated[str | None, Header(max_length=20)] = None,
    x_nonce: Annotated[str | None, Header(max_length=64)] = None,
    x_signature: Annotated[str | None, Header(max_length=128)] = None,
) -> Principal:
    """A staff member (Bearer token) or a signed integration, of the tenant in the path."""
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token or deps.staff_tokens is None:
            raise ApiError(401, "invalid_token", "身份令牌无效")
        principal = deps.staff_tokens.verify(token.strip())
    elif x_api_key:
        principal = await signed_integration(request, deps, x_api_key, x_timestamp, x_nonce, x_signature)
    else:
        raise ApiError(401, "unauthenticated", "请先登录或使用 API Key 签名调用")
    if principal.tenant != tenant:
        raise ApiError(403, "wrong_tenant", "无权访问其他地区的数据")
    return principal


CallerDep = Annotated[Principal, Depends(caller)]
SignedDep = Annotated[Principal, Depends(signed_integration)]


def client_ip(request: Request, header: str | None) -> str:
    """The submitter's address: the ingress's header when configured (it must overwrite, not append,
    what the client sent), else the socket peer."""
    if header:
        value = request.headers.get(header, "").split(",")[0].strip()
        if value:
            return value[:64]
    return request.client.host if request.client else "unknown"


async def rate_limit_many(deps: Deps, limits: list[tuple[str, int]], window: timedelta, now: datetime) -> None:
    """Several fixed-window counters in one autocommitted statement; 429 if any is over its limit.

    The counters stay in PostgreSQL so the limit means the same with any number of intake processes,
    but outside the report's transaction: there each counter row (one per client address) would stay
    locked until the report commits, serialising every report from one address (a carrier NAT, the
    benchmark's generator). Autocommit saves the BEGIN and COMMIT round trips; the fixed statement
    saves building a multi-row INSERT per call (docs/performance.md).
    """
    if not limits:
        return
    span = int(window.total_seconds())
    start = datetime.fromtimestamp(int(now.timestamp()) // span * span, UTC)
    async with deps.sessions() as s:
        await s.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        # Sorted keys: two requests sharing keys lock their rows in the same order.
        rows = await s.execute(store.COUNT_RATES, {"keys": sorted(k for k, _ in limits), "start": start})
        counts: dict[str, int] = {k: n for k, n in rows.all()}
        if random.random() < 0.01:  # old windows are useless; sweep now and then, not on every call
            c = store.rate_counter
            await s.execute(delete(c).where(c.c.window_start < start - window))
    if any(counts.get(k, 0) > limit for k, limit in limits):
        raise RateLimited(max(1, int((start + window - now).total_seconds()) + 1))


async def limit_citizen(
    deps: Deps, request: Request, *, phone_hash: str | None, openid: str | None, signed: bool, now: datetime
) -> None:
    """Citizen submissions: per phone and per openid always; per client IP when unsigned (a signed
    mini-program backend is one address for all its users and has its own per-integration limit).
    Keys are keyed hashes: no phone, openid or IP is stored in clear."""
    key = deps.pii.hmac_key()
    limits: list[tuple[str, int]] = []
    if phone_hash:
        limits.append((f"phone:{phone_hash}", deps.reports_per_phone_per_hour))
    if openid:
        limits.append((f"openid:{lookup_hash(openid, key)}", deps.reports_per_openid_per_hour))
    if not signed:
        limits.append(
            (f"ip:{lookup_hash(client_ip(request, deps.client_ip_header), key)}", deps.reports_per_ip_per_hour)
        )
    await rate_limit_many(deps, limits, timedelta(hours=1), now)
