"""Fake WeChat mini-program server: `stable_token` and `subscribeMessage.send` (reference §3.2, §3.3, §7).

Answers like WeChat: HTTP 200 with ``{"errcode": N, "errmsg": "… rid: …"}`` for every business error.

* ``POST /cgi-bin/stable_token`` ``{"grant_type","appid","secret","force_refresh"}``: bad grant_type
  → 40002; unknown appid → 40013; wrong secret → 40125. Normal mode returns the current token
  while it is valid and has more than 300 s left, with the remaining ``expires_in``; in its last
  300 s a new token is issued (the old one stays valid until it expires). ``force_refresh: true``
  invalidates the current token at once and issues a new one, at most 20 times a day (45009) and
  not within 30 s of the last forced refresh (45011).
* ``POST /cgi-bin/message/subscribe/send?access_token=…``: missing token → 41001; unknown →
  40001 ``invalid credential, access_token is invalid or not latest``; malformed → 40014; expired →
  42001. Body: not JSON → 47001; ``touser`` not an openid of this app → 40003; unknown
  ``template_id`` → 40037; ``page`` not in the app's pages → 41030; ``miniprogram_state`` outside
  developer/trial/formal → 47003; ``data`` must carry exactly the template's keys, each
  ``{"value": str}`` fitting its keyword type (thing ≤20 chars, phrase ≤5 Chinese characters,
  character_string ≤32 ASCII, number, letter, symbol, time, date, amount, phone_number,
  car_number, name) → 47003 ``argument invalid! data.<key>.value invalid``. No subscription credit
  for (openid, template) → 43101 ``user refuse to accept the msg``; a one-time credit is consumed by
  the send; a long-term subscription is not. A send to an openid while another is in flight
  → 43108.
* Success: ``{"errcode":0,"errmsg":"ok"}``.

This module checks values with its own rules; it never imports notify's code.

Test-only defaults (``create_app`` args; ``python -m gridline_fakes wechat --app APPID:SECRET
--template ID:key1,key2 --page pages/x``): app ``wx0123456789abcdef`` / secret
``0123456789abcdef0123456789abcdef``; template ``TPL_TICKET_RECEIVED`` with keys
``character_string1,thing2,time3``; any page.

Control endpoints (not WeChat's): ``POST /_fake/subscriptions`` ``{"openid","template_id",
"count":1,"long_term":false}`` grants credits (what the user's acceptance in the mini-program
does); ``POST /_fake/openids`` ``{"openids":[…]}`` registers users; ``GET /_fake/messages``;
``POST /_fake/tokens/expire`` ages every token past its expiry; ``POST /_fake/faults`` ``{"kind":
"server_error"|"errcode"|"delay","count":1,"errcode":-1,"delay_s":0}``; ``POST /_fake/reset``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

logger = logging.getLogger("gridline_fakes.wechat")

DEFAULT_APPS = {"wx0123456789abcdef": "0123456789abcdef0123456789abcdef"}
DEFAULT_TEMPLATES = {"TPL_TICKET_RECEIVED": ["character_string1", "thing2", "time3"]}
TOKEN_TTL_S = 7200
ROTATE_BEFORE_S = 300
FORCE_PER_DAY = 20
FORCE_MIN_GAP_S = 30

_OPENID = re.compile(r"^o[A-Za-z0-9_-]{27}$")
_CHINESE = r"\u4e00-\u9fff"
_TIME = r"(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d)?"
_DATE = r"\d{4}(?:年\d{1,2}月\d{1,2}日|[-/.]\d{1,2}[-/.]\d{1,2})"
_ONE_TIME = rf"(?:{_DATE}\s*{_TIME}|{_DATE}|{_TIME})"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _fits(kind: str, value: str) -> bool:
    """WeChat's keyword-type rules (§3.3), written out here independently of notify's fitting code."""
    if not value or _CONTROL.search(value):
        return False
    if kind == "thing":
        return len(value) <= 20
    if kind == "number":
        return len(value) <= 32 and re.fullmatch(r"\d+(?:\.\d+)?", value) is not None
    if kind == "letter":
        return re.fullmatch(r"[A-Za-z]{1,32}", value) is not None
    if kind == "symbol":
        return len(value) <= 5 and re.fullmatch(r"[^\w\s]+", value) is not None
    if kind == "character_string":
        return len(value) <= 32 and re.fullmatch(r"[\x21-\x7e]+", value) is not None
    if kind in ("time", "date"):
        return re.fullmatch(rf"{_ONE_TIME}(?:\s*~\s*{_ONE_TIME})?", value) is not None
    if kind == "amount":
        return re.fullmatch(r"[¥$€£]?\d{1,10}(?:\.\d{1,2})?元?", value) is not None
    if kind == "phone_number":
        return re.fullmatch(r"[\d+\-]{1,17}", value) is not None
    if kind == "car_number":
        return len(value) <= 8
    if kind == "name":
        return (len(value) <= 10 and re.fullmatch(f"[{_CHINESE}·]+", value) is not None) or (
            len(value) <= 20 and re.fullmatch(r"[A-Za-z .\-]+", value) is not None
        )
    if kind == "phrase":
        return re.fullmatch(f"[{_CHINESE}]{{1,5}}", value) is not None
    return len(value) <= 20  # enum and unknown kinds: as lenient as thing


def _kind(key: str) -> str:
    return key.rstrip("0123456789")


@dataclass
class _Token:
    value: str
    appid: str
    expires_at: float
    revoked: bool = False


@dataclass
class _Credit:
    count: int = 0
    long_term: bool = False


class Fault(BaseModel):
    """Behaviour for the next `count` subscribe sends: an HTTP `status` (502), an `errcode`
    (-1 busy …), or `delay` (process normally, answer after `delay_s`: an ambiguous outcome)."""

    kind: Literal["server_error", "errcode", "delay"]
    count: int = Field(default=1, ge=1)
    status: int = 502
    errcode: int = -1
    delay_s: float = Field(default=0.0, ge=0)


class Subscription(BaseModel):
    openid: str
    template_id: str
    count: int = Field(default=1, ge=0)
    long_term: bool = False


class OpenIds(BaseModel):
    openids: list[str]
    appid: str | None = None


def _rid() -> str:
    return f"{secrets.token_hex(4)}-{secrets.token_hex(4)}-{secrets.token_hex(4)}"


def _err(code: int, msg: str) -> JSONResponse:
    return JSONResponse({"errcode": code, "errmsg": f"{msg} rid: {_rid()}"})


@dataclass
class WechatFake:
    apps: dict[str, str]
    templates: dict[str, list[str]]
    pages: frozenset[str] | None
    clock: Callable[[], float]
    tokens: dict[str, _Token] = field(default_factory=dict)
    current: dict[str, str] = field(default_factory=dict)  # appid → newest token value
    forced: dict[str, list[float]] = field(default_factory=dict)
    openids: dict[str, set[str]] = field(default_factory=dict)  # appid → its users
    credits: dict[tuple[str, str], _Credit] = field(default_factory=dict)
    in_flight: set[str] = field(default_factory=set)
    messages: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)
    faults: deque[Fault] = field(default_factory=deque)
    token_fetches: int = 0

    def reset(self) -> None:
        for item in (self.tokens, self.current, self.forced, self.openids, self.credits):
            item.clear()
        self.in_flight.clear()
        self.messages.clear()
        self.refused.clear()
        self.faults.clear()
        self.token_fetches = 0

    def _issue(self, appid: str) -> _Token:
        token = _Token("wx" + secrets.token_urlsafe(96)[:126], appid, self.clock() + TOKEN_TTL_S)
        self.tokens[token.value] = token
        self.current[appid] = token.value
        return token

    def stable_token(self, body: Any) -> JSONResponse:
        if not isinstance(body, dict):
            return _err(47001, "data format error")
        if body.get("grant_type") != "client_credential":
            return _err(40002, "invalid grant_type")
        appid = body.get("appid")
        if appid not in self.apps:
            return _err(40013, "invalid appid")
        if body.get("secret") != self.apps[appid]:
            return _err(40125, "invalid appsecret")
        now = self.clock()
        self.token_fetches += 1
        if body.get("force_refresh") is True:
            recent = [t for t in self.forced.get(appid, []) if now - t < 86400]
            if len(recent) >= FORCE_PER_DAY:
                return _err(45009, "reach max api daily quota limit")
            if recent and now - recent[-1] < FORCE_MIN_GAP_S:
                return _err(45011, "api minute-quota reach limit  mustslower  retry next minute")
            self.forced[appid] = [*recent, now]
            old = self.tokens.get(self.current.get(appid, ""))
            if old is not None:
                old.revoked = True  # forced mode invalidates the previous token at once
            token = self._issue(appid)
        else:
            token = self.tokens.get(self.current.get(appid, ""))  # type: ignore[assignment]
            if token is None or token.revoked or token.expires_at - now <= ROTATE_BEFORE_S:
                token = self._issue(appid)  # the old one, if any, stays valid until it expires
        return JSONResponse({"access_token": token.value, "expires_in": int(token.expires_at - now)})

    def check_token(self, value: str | None) -> tuple[JSONResponse | None, str]:
        if not value:
            return _err(41001, "access_token missing"), ""
        token = self.tokens.get(value)
        if token is None:
            if not value.startswith("wx") or len(value) < 32:
                return _err(40014, "invalid access_token"), ""
            return _err(40001, "invalid credential, access_token is invalid or not latest"), ""
        if token.revoked:
            return _err(40001, "invalid credential, access_token is invalid or not latest"), ""
        if token.expires_at <= self.clock():
            return _err(42001, "access_token expired"), ""
        return None, token.appid

    def subscribe_send(self, appid: str, raw: bytes) -> JSONResponse:
        try:
            body = json.loads(raw)
        except ValueError:
            return _err(47001, "data format error")
        if not isinstance(body, dict):
            return _err(47001, "data format error")
        openid = body.get("touser")
        if not isinstance(openid, str) or not _OPENID.match(openid) or openid not in self.openids.get(appid, set()):
            return _err(40003, "invalid openid")
        template_id = body.get("template_id")
        if not isinstance(template_id, str) or template_id not in self.templates:
            return _err(40037, "invalid template_id")
        keys = self.templates[template_id]
        page = body.get("page")
        if page is not None and (
            not isinstance(page, str) or (self.pages is not None and page.split("?", 1)[0] not in self.pages)
        ):
            return _err(41030, "invalid page")
        if body.get("miniprogram_state", "formal") not in ("developer", "trial", "formal"):
            return _err(47003, "argument invalid! miniprogram_state invalid")
        data = body.get("data")
        if not isinstance(data, dict):
            return _err(47003, "argument invalid! data is empty")
        for key in keys:
            item = data.get(key)
            value = item.get("value") if isinstance(item, dict) else None
            if not isinstance(value, str) or not value:
                return _err(47003, f"argument invalid! data.{key}.value is empty")
            if not _fits(_kind(key), value):
                return _err(47003, f"argument invalid! data.{key}.value invalid")
        extra = sorted(set(data) - set(keys))
        if extra:
            return _err(47003, f"argument invalid! data.{extra[0]} invalid")
        credit = self.credits.get((openid, template_id))
        if credit is None or (not credit.long_term and credit.count <= 0):
            self.refused.append({"openid": openid, "template_id": template_id, "errcode": 43101})
            return _err(43101, "user refuse to accept the msg")
        if not credit.long_term:
            credit.count -= 1
        self.messages.append(
            {
                "openid": openid,
                "template_id": template_id,
                "page": page,
                "data": {k: data[k]["value"] for k in keys},
                "at": datetime.fromtimestamp(self.clock(), UTC).isoformat(),
            }
        )
        logger.info("subscribe message accepted template=%s", template_id)
        return JSONResponse({"errcode": 0, "errmsg": "ok"})


def create_app(
    apps: Mapping[str, str] | None = None,
    *,
    templates: Mapping[str, Iterable[str]] | None = None,
    pages: Iterable[str] | None = None,
    openids: Iterable[str] = (),
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """`apps`: appid → secret; `templates`: template_id → its keyword keys; `pages`: None = any page."""
    app_map = dict(apps or DEFAULT_APPS)
    fake = WechatFake(
        apps=app_map,
        templates={k: list(v) for k, v in (templates or DEFAULT_TEMPLATES).items()},
        pages=frozenset(pages) if pages is not None else None,
        clock=clock,
    )
    for appid in app_map:
        fake.openids[appid] = set(openids)
    app = FastAPI(title="fake WeChat", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.fake = fake

    @app.post("/cgi-bin/stable_token")
    async def stable_token(request: Request) -> JSONResponse:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _err(47001, "data format error")
        return fake.stable_token(body)

    @app.post("/cgi-bin/message/subscribe/send")
    async def subscribe_send(request: Request) -> Response:
        fault = fake.faults.popleft() if fake.faults else None
        if fault is not None and fault.kind == "server_error":
            return Response("Bad Gateway", status_code=fault.status, media_type="text/plain")
        if fault is not None and fault.kind == "errcode":
            return _err(fault.errcode, "system error" if fault.errcode == -1 else "injected")
        refused, appid = fake.check_token(request.query_params.get("access_token"))
        if refused is not None:
            return refused
        raw = await request.body()
        try:
            openid = json.loads(raw).get("touser", "")
        except (ValueError, AttributeError):
            openid = ""
        if openid and openid in fake.in_flight:
            return _err(43108, "concurrent send to the same user is limited")
        fake.in_flight.add(openid)
        try:
            reply = fake.subscribe_send(appid, raw)
            if fault is not None:  # delay: the outcome is decided, the answer comes late
                await asyncio.sleep(fault.delay_s)
        finally:
            fake.in_flight.discard(openid)
        return reply

    @app.post("/_fake/subscriptions")
    async def subscribe(s: Subscription) -> dict[str, Any]:
        credit = fake.credits.setdefault((s.openid, s.template_id), _Credit())
        credit.count += s.count
        credit.long_term = credit.long_term or s.long_term
        for users in fake.openids.values():
            users.add(s.openid)
        return {"count": credit.count, "long_term": credit.long_term}

    @app.post("/_fake/openids")
    async def add_openids(body: OpenIds) -> dict[str, int]:
        for appid in [body.appid] if body.appid else list(fake.apps):
            fake.openids.setdefault(appid, set()).update(body.openids)
        return {"openids": sum(len(v) for v in fake.openids.values())}

    @app.get("/_fake/messages")
    async def messages() -> list[dict[str, Any]]:
        return fake.messages

    @app.get("/_fake/refused")
    async def refused() -> list[dict[str, Any]]:
        return fake.refused

    @app.get("/_fake/stats")
    async def stats() -> dict[str, int]:
        return {"token_fetches": fake.token_fetches, "messages": len(fake.messages)}

    @app.post("/_fake/tokens/expire")
    async def expire() -> dict[str, int]:
        for token in fake.tokens.values():
            token.expires_at = min(token.expires_at, fake.clock() - 1)
        return {"expired": len(fake.tokens)}

    @app.post("/_fake/faults")
    async def add_fault(fault: Fault) -> list[Fault]:
        fake.faults.extend([fault] * fault.count)
        return list(fake.faults)

    @app.post("/_fake/reset")
    async def reset() -> dict[str, bool]:
        fake.reset()
        for appid in fake.apps:
            fake.openids[appid] = set()
        return {"ok": True}

    return app
