"""WeCom (企业微信) application messages, `message/send`, for government staff (reference §3.4).

Every send asks WeCom to drop an identical request within ``duplicate_check_interval``
(`enable_duplicate_check`): our retry of an ambiguous send rebuilds the same JSON from the same row,
so within that window a resend cannot reach the member twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from notify.providers.base import Lookup, Outcome, SendResult, redact_provider_text, transport_failure
from notify.providers.tokens import TOKEN_ERRCODES, Token, TokenCache, TokenError

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://qyapi.weixin.qq.com"
MsgType = Literal["text", "textcard", "markdown"]
MAX_CONTENT_BYTES = 2048  # text and markdown content (§3.4)


@dataclass(frozen=True)
class WecomMessage:
    userid: str = field(repr=False)
    msgtype: MsgType
    content: str  # text / markdown content, or the textcard description
    title: str = ""  # textcard only
    url: str = ""  # textcard only
    out_id: str = ""  # our attempt id, for logs only


_ERRCODES: Mapping[int, tuple[Outcome, bool, float | None]] = {
    -1: ("retryable", False, None),  # busy: retry (≤3, §3.4)
    45009: ("retryable", False, 60.0),  # frequency limit
    45033: ("retryable", False, 5.0),  # concurrency limit
    81013: ("rejected", True, None),  # no valid recipient: not a WeCom member (any more)
    60020: ("rejected", True, None),  # our IP is not trusted: configuration
    40056: ("rejected", True, None),  # invalid agentid: configuration
    48002: ("rejected", True, None),  # API forbidden for this app
    82001: ("rejected", True, None),  # recipients out of the app's visible range
}


def classify(errcode: int) -> tuple[Outcome, bool, float | None]:
    if errcode == 0:
        return "sent", False, None
    return _ERRCODES.get(errcode, ("rejected", True, None))


def fit_bytes(text: str, limit: int = MAX_CONTENT_BYTES) -> str:
    """Cut to at most ``limit`` UTF-8 bytes on a character boundary (WeCom counts bytes, not characters)."""
    raw = text.encode()
    return text if len(raw) <= limit else raw[:limit].decode(errors="ignore")


class WecomAppClient:
    """One app (corpid + agentid + its secret); tokens cached per app and refreshed on 40014/42001."""

    name: str = "wecom"

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        corpid: str,
        corpsecret: str,
        agentid: int,
        base_url: str = DEFAULT_BASE_URL,
        timeout_s: float | None = None,
        duplicate_check_interval_s: int = 1800,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._http = http
        self._corpid = corpid
        self._secret = corpsecret
        self.agentid = agentid
        self._base = httpx.URL(base_url)
        self._timeout = httpx.Timeout(timeout_s) if timeout_s is not None else http.timeout
        self.duplicate_check_interval_s = min(max(duplicate_check_interval_s, 1), 4 * 3600)
        self._clock = clock
        self.tokens = TokenCache(self._fetch_token, margin_s=60.0, clock=clock)

    async def _fetch_token(self, _force: bool) -> Token:
        """`GET /cgi-bin/gettoken`: WeCom has no forced refresh, a repeat fetch is all there is."""
        url = self._base.join("/cgi-bin/gettoken").copy_with(
            params={"corpid": self._corpid, "corpsecret": self._secret}
        )
        try:
            response = await self._http.get(url, timeout=self._timeout)
            reply = response.json() if response.status_code == 200 else None
        except (httpx.TransportError, ValueError) as exc:
            raise TokenError(f"transport.{type(exc).__name__}", "token endpoint unreachable", retryable=True) from exc
        if not isinstance(reply, dict):
            raise TokenError(f"http.{response.status_code}", "token endpoint failed", retryable=True)
        code = int(reply.get("errcode", 0))
        if code != 0 or "access_token" not in reply:
            logger.error("wecom gettoken refused: errcode=%s", code)
            raise TokenError(f"token.{code}", redact_provider_text(str(reply.get("errmsg", ""))), retryable=code == -1)
        return Token(str(reply["access_token"]), self._clock() + float(reply.get("expires_in", 7200)))

    def body(self, msg: WecomMessage) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "touser": msg.userid,
            "msgtype": msg.msgtype,
            "agentid": self.agentid,
            "safe": 0,
            "enable_duplicate_check": 1,
            "duplicate_check_interval": self.duplicate_check_interval_s,
        }
        if msg.msgtype == "textcard":
            payload["textcard"] = {"title": msg.title, "description": msg.content, "url": msg.url}
        else:
            payload[msg.msgtype] = {"content": fit_bytes(msg.content)}
        return payload

    async def send(self, msg: WecomMessage) -> SendResult:
        try:
            token = await self.tokens.get()
            result, errcode = await self._send_once(msg, token)
            if errcode in TOKEN_ERRCODES:
                result, _ = await self._send_once(msg, await self.tokens.refresh(token))
        except TokenError as err:
            outcome: Outcome = "retryable" if err.retryable else "rejected"
            return SendResult(self.name, outcome, None, err.code, err.message, fallback=not err.retryable)
        logger.log(
            logging.INFO if result.outcome == "sent" else logging.WARNING,
            "wecom message %s out_id=%s code=%s",
            result.outcome,
            msg.out_id,
            result.code,
        )
        return result

    async def _send_once(self, msg: WecomMessage, token: str) -> tuple[SendResult, int | None]:
        url = self._base.join("/cgi-bin/message/send").copy_with(params={"access_token": token})
        try:
            response = await self._http.post(url, json=self.body(msg), timeout=self._timeout)
        except httpx.TransportError as exc:
            return transport_failure(self.name, exc), None
        if response.status_code != 200:
            outcome: Outcome = "retryable" if response.status_code >= 500 or response.status_code == 429 else "rejected"
            return SendResult(self.name, outcome, None, f"http.{response.status_code}", response.reason_phrase), None
        try:
            reply = response.json()
            errcode = int(reply.get("errcode", 0))
            errmsg = str(reply.get("errmsg", ""))
        except (ValueError, TypeError, AttributeError):
            return SendResult(self.name, "ambiguous", None, "http.200", "unreadable body"), None
        outcome, fallback, retry_after = classify(errcode)
        if outcome == "sent":
            invalid = {u.lower() for u in str(reply.get("invaliduser") or "").split("|") if u}
            if msg.userid.lower() in invalid:
                # Partial success for the request, but our one recipient is not a member: nothing was sent.
                return SendResult(self.name, "rejected", None, "invaliduser", "接收人无效", fallback=True), errcode
        msgid = reply.get("msgid") if outcome == "sent" else None
        return (
            SendResult(
                provider=self.name,
                outcome=outcome,
                provider_message_id=str(msgid) if msgid else None,
                code=str(errcode),
                message=redact_provider_text(errmsg),
                retry_after_s=retry_after,
                fallback=fallback,
            ),
            errcode,
        )

    async def lookup(self, phone: str, out_id: str, sent_after: float) -> Lookup:
        """WeCom cannot be asked whether a message went out, but it drops an identical request within
        the duplicate-check window: inside it, resending the same JSON is safe ("not found" lets the
        sender retry); after it, nothing can be concluded."""
        if self._clock() - sent_after < self.duplicate_check_interval_s - 60:
            return Lookup("not_found", code="resend_deduplicated_by_wecom")
        return Lookup("unknown", code="no_query_api")
