"""A cached access token per app, fetched by one caller at a time (WeChat and WeCom, reference §3.2)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

# Errcodes that mean "this access_token is no good": refetch and try the call once more.
TOKEN_ERRCODES = frozenset({40001, 40014, 42001})


@dataclass(frozen=True)
class Token:
    value: str
    expires_at: float  # clock seconds


class TokenError(Exception):
    """The token endpoint refused or could not be reached; ``retryable`` says whether trying later helps."""

    def __init__(self, code: str, message: str, *, retryable: bool) -> None:
        super().__init__(code)
        self.code = code
        self.message = message
        self.retryable = retryable


Fetch = Callable[[bool], Awaitable[Token]]  # force_refresh → a fresh token


class TokenCache:
    """Holds one app's token until ``margin_s`` before it expires; a lock keeps fetches single-flight.

    The platform rotates a stable_token 5 min before it expires (§3.2), so the default margin
    refreshes as that rotation starts rather than using a token about to be replaced.
    """

    def __init__(self, fetch: Fetch, *, margin_s: float = 300.0, clock: Callable[[], float] = time.time) -> None:
        self._fetch = fetch
        self._margin_s = margin_s
        self._clock = clock
        self._token: Token | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0  # for metrics and tests

    def _fresh(self, token: Token | None) -> bool:
        return token is not None and token.expires_at - self._margin_s > self._clock()

    async def get(self) -> str:
        if self._fresh(self._token):
            assert self._token is not None
            return self._token.value
        async with self._lock:
            if not self._fresh(self._token):
                self._token = await self._fetch(False)
                self.fetches += 1
            assert self._token is not None
            return self._token.value

    async def refresh(self, rejected: str) -> str:
        """The provider refused ``rejected``: fetch again (normal mode), forcing only if it comes back unchanged.

        Concurrent callers that were all refused the same token share one refetch.
        """
        async with self._lock:
            if self._token is not None and self._token.value != rejected and self._fresh(self._token):
                return self._token.value
            self._token = None
            token = await self._fetch(False)
            self.fetches += 1
            if token.value == rejected:
                # Normal mode hands out the same token while the platform thinks it valid; the API
                # just said it is not, so only a forced refresh (rate-limited: ≤20/day) helps.
                token = await self._fetch(True)
                self.fetches += 1
            self._token = token
            return token.value

    def forget(self) -> None:
        self._token = None
