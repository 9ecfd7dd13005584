"""One httpx client for many requests in flight: the connection pool split into small shards.

httpcore's pool re-scans every connection and every queued request each time a request starts or
ends (``_assign_requests_to_connections``), so one pool of N connections costs O(N) per request:
at 50 in flight that was ~3,600 ``is_idle`` calls per request and most of the client's CPU
(profiled in ``bench/notify``). K pools of N/K connections do the same work at O(N/K) each. Each
request goes to the shard with the fewest requests in flight, so a slow shard does not queue work
that another could take. Still plain httpx (same models, errors and timeouts).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

SHARD_CONNECTIONS = 5  # connections per shard: small enough that the per-request scans stay cheap


class ShardedTransport(httpx.AsyncBaseTransport):
    def __init__(
        self, max_connections: int, *, per_shard: int = SHARD_CONNECTIONS, keepalive_expiry: float = 30
    ) -> None:
        per_shard = max(1, min(per_shard, max_connections))
        count = max(1, -(-max_connections // per_shard))
        limits = httpx.Limits(
            max_connections=per_shard, max_keepalive_connections=per_shard, keepalive_expiry=keepalive_expiry
        )
        self._shards = [httpx.AsyncHTTPTransport(limits=limits) for _ in range(count)]
        self._busy = [0] * count

    @property
    def shards(self) -> int:
        return len(self._shards)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        i = min(range(len(self._busy)), key=self._busy.__getitem__)
        self._busy[i] += 1
        try:
            response = await self._shards[i].handle_async_request(request)
        except BaseException:
            self._busy[i] -= 1
            raise
        # The connection is busy until the client has read and closed the body.
        response.stream = _Release(response.stream, self._busy, i)
        return response

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()


class _Release(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream | httpx.SyncByteStream, busy: list[int], i: int) -> None:
        self._inner = inner
        self._busy = busy
        self._i: int | None = i

    async def __aiter__(self) -> AsyncIterator[bytes]:
        assert isinstance(self._inner, httpx.AsyncByteStream)
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            if isinstance(self._inner, httpx.AsyncByteStream):
                await self._inner.aclose()
        finally:
            if self._i is not None:
                self._busy[self._i] -= 1
                self._i = None


def make_client(max_connections: int, timeout_s: float) -> httpx.AsyncClient:
    """The process's outbound client (providers, 12345 sync-back)."""
    return httpx.AsyncClient(timeout=timeout_s, transport=ShardedTransport(max_connections))
