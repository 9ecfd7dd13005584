"""Fake WeCom (企业微信) server: `gettoken` and application `message/send` (reference §3.4, §7).

Answers like WeCom: HTTP 200 with ``{"errcode": N, "errmsg": "…"}``.

* ``GET /cgi-bin/gettoken?corpid=&corpsecret=``: unknown corpid → 40013 ``invalid corpid``;
  unknown secret → 40001 ``invalid credential``. One token per app secret; a repeat fetch while it
  is valid returns the same token with the remaining ``expires_in``.
* ``POST /cgi-bin/message/send?access_token=…``: missing → 41001; unknown → 40014 ``invalid
  access_token``; expired → 42001. ``agentid`` must be the token's app (40056); ``msgtype`` text,
  textcard or markdown (others → 40008); text/markdown ``content`` required (44004) and ≤2048 bytes
  (45002); textcard ``title`` ≤128 bytes, ``description`` ≤512 bytes and ``url`` required (44004 /
  45002). ``touser`` ``a|b``: members unknown to the corp come back in ``invaliduser`` (lower-cased);
  when none is valid → 81013 ``user & party & tag all invalid``. With ``enable_duplicate_check`` an
  identical request within ``duplicate_check_interval`` (default 1800 s, max 4 h) is answered ok
  but not delivered again. Per member and app, more than 30 messages a minute or 1000 an hour are
  answered ok and silently dropped. ``trusted_ips`` off → 60020 ``not allow to access from your ip``.
* Success: ``{"errcode":0,"errmsg":"ok","msgid":"…"}`` plus ``invaliduser`` when some were invalid.

Test-only defaults: corp ``ww0123456789abcdef``, app agentid 1000002 with secret
``wecom-test-secret-0123456789abcdef``; members ``zhangsan``, ``lisi``.
CLI: ``python -m gridline_fakes wecom --port N [--corp ID] [--app AGENTID:SECRET] [--user ID]``.

Control endpoints: ``GET /_fake/messages`` (delivered, one per member), ``GET /_fake/dropped``,
``POST /_fake/users`` ``{"users":[…]}``, ``POST /_fake/tokens/expire``, ``POST /_fake/ip``
``{"trusted": false}``, ``POST /_fake/faults`` ``{"kind":"server_error"|"errcode"|"delay",…}``,
``POST /_fake/reset``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

logger = logging.getLogger("gridline_fakes.wecom")

DEFAULT_CORP = "ww0123456789abcdef"
DEFAULT_APPS = {1000002: "wecom-test-secret-0123456789abcdef"}
DEFAULT_USERS = ("zhangsan", "lisi")
TOKEN_TTL_S = 7200
PER_MINUTE = 30
PER_HOUR = 1000


class Fault(BaseModel):
    kind: Literal["server_error", "errcode", "delay"]
    count: int = Field(default=1, ge=1)
    status: int = 502
    errcode: int = -1
    delay_s: float = Field(default=0.0, ge=0)


class Users(BaseModel):
    users: list[str]


class Ip(BaseModel):
    trusted: bool


@dataclass
class _Token:
    value: str
    agentid: int
    expires_at: float


def _err(code: int, msg: str) -> JSONResponse:
    return JSONResponse({"errcode": code, "errmsg": f"{msg}, hint: [{int(time.time())}_{secrets.token_hex(6)}]"})


@dataclass
class WecomFake:
    corpid: str
    apps: dict[int, str]
    users: set[str]
    clock: Callable[[], float]
    tokens: dict[str, _Token] = field(default_factory=dict)
    by_app: dict[int, str] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)
    recent: dict[tuple[str, int], deque[float]] = field(default_factory=dict)
    seen: dict[str, float] = field(default_factory=dict)  # request JSON → when first accepted
    faults: deque[Fault] = field(default_factory=deque)
    trusted_ip: bool = True
    token_fetches: int = 0

    def gettoken(self, corpid: str | None, secret: str | None) -> JSONResponse:
        if corpid != self.corpid:
            return _err(40013, "invalid corpid")
        agentid = next((a for a, s in self.apps.items() if s == secret), None)
        if agentid is None:
            return _err(40001, "invalid credential")
        self.token_fetches += 1
        now = self.clock()
        token = self.tokens.get(self.by_app.get(agentid, ""))
        if token is None or token.expires_at <= now:
            token = _Token(secrets.token_urlsafe(48), agentid, now + TOKEN_TTL_S)
            self.tokens[token.value] = token
            self.by_app[agentid] = token.value
        return JSONResponse(
            {"errcode": 0, "errmsg": "ok", "access_token": token.value, "expires_in": int(token.expires_at - now)}
        )

    def send(self, access_token: str | None, raw: bytes) -> JSONResponse:
        if not access_token:
            return _err(41001, "access_token missing")
        token = self.tokens.get(access_token)
        if token is None:
            return _err(40014, "invalid access_token")
        if token.expires_at <= self.clock():
            return _err(42001, "access_token expired")
        if not self.trusted_ip:
            return _err(60020, "not allow to access from your ip")
        try:
            body = json.loads(raw)
        except ValueError:
            return _err(47001, "data format error")
        if not isinstance(body, dict):
            return _err(47001, "data format error")
        if body.get("agentid") != token.agentid:
            return _err(40056, "invalid agentid")
        msgtype = str(body.get("msgtype"))
        problem = self._content_problem(msgtype, body.get(msgtype))
        if problem is not None:
            return problem
        wanted = [u for u in str(body.get("touser") or "").split("|") if u]
        valid = [u for u in wanted if u.lower() in self.users]
        invalid = [u.lower() for u in wanted if u.lower() not in self.users]
        if not valid:
            return _err(81013, "user & party & tag all invalid")
        msgid = secrets.token_urlsafe(24)
        now = self.clock()
        key = json.dumps(body, sort_keys=True, ensure_ascii=False)
        interval = min(int(body.get("duplicate_check_interval") or 1800), 4 * 3600)
        duplicate = bool(body.get("enable_duplicate_check")) and now - self.seen.get(key, -1e18) < interval
        if not duplicate:
            self.seen[key] = now
            for user in valid:
                self._deliver(user.lower(), token.agentid, msgtype, body[msgtype], msgid, now)
        else:
            self.dropped.append({"userids": [u.lower() for u in valid], "reason": "duplicate_check"})
        reply: dict[str, Any] = {"errcode": 0, "errmsg": "ok", "msgid": msgid}
        if invalid:
            reply["invaliduser"] = "|".join(invalid)
        return JSONResponse(reply)

    def _deliver(self, user: str, agentid: int, msgtype: str, content: Any, msgid: str, now: float) -> None:
        window = self.recent.setdefault((user, agentid), deque())
        while window and now - window[0] >= 3600:
            window.popleft()
        last_minute = sum(1 for t in window if now - t < 60)
        if last_minute >= PER_MINUTE or len(window) >= PER_HOUR:
            # WeCom answers ok and silently discards what is over the member's limits (§3.4).
            self.dropped.append({"userids": [user], "reason": "member_rate_limit"})
            return
        window.append(now)
        self.messages.append({"userid": user, "agentid": agentid, "msgtype": msgtype, msgtype: content, "msgid": msgid})
        logger.info("wecom message delivered msgid=%s", msgid)

    @staticmethod
    def _content_problem(msgtype: Any, content: Any) -> JSONResponse | None:
        if msgtype not in ("text", "textcard", "markdown"):
            return _err(40008, "invalid message type")
        if not isinstance(content, dict):
            return _err(44004, "empty content")
        if msgtype == "textcard":
            title, desc, url = content.get("title"), content.get("description"), content.get("url")
            if not (isinstance(title, str) and isinstance(desc, str) and isinstance(url, str)) or not (
                title and desc and url
            ):
                return _err(44004, "empty content")
            if len(title.encode()) > 128 or len(desc.encode()) > 512:
                return _err(45002, "content size out of limit")
            return None
        text = content.get("content")
        if not isinstance(text, str) or not text:
            return _err(44004, "empty content")
        if len(text.encode()) > 2048:
            return _err(45002, "content size out of limit")
        return None

    def reset(self) -> None:
        for item in (self.tokens, self.by_app, self.recent, self.seen):
            item.clear()
        self.messages.clear()
        self.dropped.clear()
        self.faults.clear()
        self.trusted_ip = True
        self.token_fetches = 0


def create_app(
    corpid: str = DEFAULT_CORP,
    apps: Mapping[int, str] | None = None,
    *,
    users: Iterable[str] = DEFAULT_USERS,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    fake = WecomFake(corpid, dict(apps or DEFAULT_APPS), {u.lower() for u in users}, clock)
    app = FastAPI(title="fake WeCom", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.fake = fake

    @app.get("/cgi-bin/gettoken")
    async def gettoken(corpid: str | None = None, corpsecret: str | None = None) -> JSONResponse:
        return fake.gettoken(corpid, corpsecret)

    @app.post("/cgi-bin/message/send")
    async def send(request: Request) -> Response:
        fault = fake.faults.popleft() if fake.faults else None
        if fault is not None and fault.kind == "server_error":
            return Response("Bad Gateway", status_code=fault.status, media_type="text/plain")
        if fault is not None and fault.kind == "errcode":
            return _err(fault.errcode, "system busy" if fault.errcode == -1 else "injected")
        reply = fake.send(request.query_params.get("access_token"), await request.body())
        if fault is not None:
            await asyncio.sleep(fault.delay_s)
        return reply

    @app.get("/_fake/messages")
    async def messages() -> list[dict[str, Any]]:
        return fake.messages

    @app.get("/_fake/dropped")
    async def dropped() -> list[dict[str, Any]]:
        return fake.dropped

    @app.get("/_fake/stats")
    async def stats() -> dict[str, int]:
        return {"token_fetches": fake.token_fetches, "messages": len(fake.messages)}

    @app.post("/_fake/users")
    async def add_users(body: Users) -> dict[str, int]:
        fake.users.update(u.lower() for u in body.users)
        return {"users": len(fake.users)}

    @app.post("/_fake/tokens/expire")
    async def expire() -> dict[str, int]:
        for token in fake.tokens.values():
            token.expires_at = min(token.expires_at, fake.clock() - 1)
        return {"expired": len(fake.tokens)}

    @app.post("/_fake/ip")
    async def ip(body: Ip) -> dict[str, bool]:
        fake.trusted_ip = body.trusted
        return {"trusted": fake.trusted_ip}

    @app.post("/_fake/faults")
    async def add_fault(fault: Fault) -> list[Fault]:
        fake.faults.extend([fault] * fault.count)
        return list(fake.faults)

    @app.post("/_fake/reset")
    async def reset() -> dict[str, bool]:
        fake.reset()
        return {"ok": True}

    return app
