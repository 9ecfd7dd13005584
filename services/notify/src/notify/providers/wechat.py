"""WeChat mini-program subscribe messages (`subscribeMessage.send`) with a `stable_token` cache (reference §3.2–3.3).

Errors come back as HTTP 200 with ``errcode``; the classification below decides what the sender
does next. ``fallback`` marks refusals that another channel (SMS) can make up for: the citizen has
no subscription credit left (43101), the openid or our template/page configuration is wrong, or
the app cannot get a token at all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from notify.providers.base import Lookup, Outcome, SendResult, redact_provider_text, transport_failure
from notify.providers.tokens import TOKEN_ERRCODES, Token, TokenCache, TokenError

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.weixin.qq.com"


@dataclass(frozen=True)
class WechatMessage:
    openid: str = field(repr=False)  # pseudonymous, but still the citizen's: kept out of logs
    template_id: str
    data: dict[str, str] = field(hash=False)  # keyword key (thing1, time2 …) → value, already fitted to its type
    page: str | None = None
    out_id: str = ""  # our attempt id, for logs only: WeChat echoes nothing


# errcode → (outcome, fall back to another channel, retry after s)
_ERRCODES: Mapping[int, tuple[Outcome, bool, float | None]] = {
    -1: ("retryable", False, None),  # system busy
    43101: ("rejected", True, None),  # not subscribed / one-time credit already used
    40003: ("rejected", True, None),  # invalid openid
    43107: ("rejected", True, None),  # subscription capability banned
    40037: ("rejected", True, None),  # template_id invalid (configuration)
    41030: ("rejected", True, None),  # page not in the live version (configuration)
    47003: ("rejected", True, None),  # data does not fit the template's keyword types
    47001: ("rejected", True, None),  # body malformed
    45168: ("rejected", False, None),  # sensitive word: our text, another channel is no better
    43108: ("retryable", False, 1.0),  # concurrent sends to one user: serialise, try again shortly
    45009: ("rejected", True, None),  # daily quota reached
    45011: ("retryable", False, 60.0),  # minute quota
}


def classify(errcode: int) -> tuple[Outcome, bool, float | None]:
    """Unknown errcodes are refusals (never resent) that another channel may make up for."""
    if errcode == 0:
        return "sent", False, None
    return _ERRCODES.get(errcode, ("rejected", True, None))


def _errcode(body: Any) -> tuple[int, str]:
    if not isinstance(body, dict):
        raise TypeError("not a JSON object")
    return int(body.get("errcode", 0)), str(body.get("errmsg", ""))


class WechatSubscribeClient:
    """One `subscribeMessage.send` per message, with one retry after a refused token (40001/40014/42001)."""

    name: str = "wechat"

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        appid: str,
        secret: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout_s: float | None = None,
        miniprogram_state: str = "formal",
        lang: str = "zh_CN",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._http = http
        self._appid = appid
        self._secret = secret
        self._base = httpx.URL(base_url)
        self._timeout = httpx.Timeout(timeout_s) if timeout_s is not None else http.timeout
        self._state = miniprogram_state
        self._lang = lang
        self._clock = clock
        self.tokens = TokenCache(self._fetch_token, clock=clock)

    async def _fetch_token(self, force_refresh: bool) -> Token:
        """`POST /cgi-bin/stable_token`: normal mode returns the current token while it is valid."""
        body = {"grant_type": "client_credential", "appid": self._appid, "secret": self._secret}
        if force_refresh:
            body["force_refresh"] = True  # type: ignore[assignment]
        try:
            response = await self._http.post(self._base.join("/cgi-bin/stable_token"), json=body, timeout=self._timeout)
            reply = response.json() if response.status_code == 200 else None
        except (httpx.TransportError, ValueError) as exc:
            # Fetching a token sends no message: always safe to try again.
            raise TokenError(f"transport.{type(exc).__name__}", "token endpoint unreachable", retryable=True) from exc
        if not isinstance(reply, dict):
            raise TokenError(f"http.{response.status_code}", "token endpoint failed", retryable=True)
        if "access_token" not in reply:
            code, msg = _errcode(reply)
            logger.error("wechat stable_token refused: errcode=%s", code)
            raise TokenError(f"token.{code}", redact_provider_text(msg), retryable=code in (-1, 45011))
        return Token(str(reply["access_token"]), self._clock() + float(reply.get("expires_in", 7200)))

    def body(self, msg: WechatMessage) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "touser": msg.openid,
            "template_id": msg.template_id,
            "data": {k: {"value": v} for k, v in msg.data.items()},
            "miniprogram_state": self._state,
            "lang": self._lang,
        }
        if msg.page:
            payload["page"] = msg.page
        return payload

    async def send(self, msg: WechatMessage) -> SendResult:
        try:
            token = await self.tokens.get()
            result, errcode = await self._send_once(msg, token)
            if errcode in TOKEN_ERRCODES:
                logger.info("wechat token refused (errcode %s): refreshing and retrying once", errcode)
                result, _ = await self._send_once(msg, await self.tokens.refresh(token))
        except TokenError as err:
            # No token, no send: retry later, or (credentials wrong) let SMS reach the citizen.
            outcome: Outcome = "retryable" if err.retryable else "rejected"
            return SendResult(self.name, outcome, None, err.code, err.message, fallback=not err.retryable)
        logger.log(
            logging.INFO if result.outcome == "sent" else logging.WARNING,
            "wechat subscribe %s out_id=%s code=%s",
            result.outcome,
            msg.out_id,
            result.code,
        )
        return result

    async def _send_once(self, msg: WechatMessage, token: str) -> tuple[SendResult, int | None]:
        url = self._base.join("/cgi-bin/message/subscribe/send").copy_with(params={"access_token": token})
        try:
            response = await self._http.post(url, json=self.body(msg), timeout=self._timeout)
        except httpx.TransportError as exc:
            return transport_failure(self.name, exc), None
        if response.status_code != 200:
            outcome: Outcome = "retryable" if response.status_code >= 500 or response.status_code == 429 else "rejected"
            return SendResult(self.name, outcome, None, f"http.{response.status_code}", response.reason_phrase), None
        try:
            errcode, errmsg = _errcode(response.json())
        except (ValueError, TypeError):
            return SendResult(self.name, "ambiguous", None, "http.200", "unreadable body"), None
        outcome, fallback, retry_after = classify(errcode)
        msgid = response.json().get("msgid") if outcome == "sent" else None
        return (
            SendResult(
                provider=self.name,
                outcome=outcome,
                provider_message_id=str(msgid) if msgid is not None else None,
                code=str(errcode),
                message=redact_provider_text(errmsg),
                retry_after_s=retry_after,
                fallback=fallback,
            ),
            errcode,
        )

    async def lookup(self, phone: str, out_id: str, sent_after: float) -> Lookup:
        """WeChat has no API to ask whether a subscribe message went out: an ambiguous one stays unproved."""
        return Lookup("unknown", code="no_query_api")
