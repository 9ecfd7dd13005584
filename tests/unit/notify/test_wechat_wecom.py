"""WeChat subscribe and WeCom app clients against the fake servers: tokens, errcodes, classification."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from gridline_fakes import __main__ as fakes_cli
from gridline_fakes import wechat as fake_wechat
from gridline_fakes import wecom as fake_wecom
from notify.providers.wechat import WechatMessage, WechatSubscribeClient
from notify.providers.wecom import WecomAppClient, WecomMessage, fit_bytes

APPID, SECRET = next(iter(fake_wechat.DEFAULT_APPS.items()))
AGENT, CORPSECRET = next(iter(fake_wecom.DEFAULT_APPS.items()))
OPENID = "o" + "A" * 27
TPL = "TPL_TICKET_RECEIVED"
DATA = {"character_string1": "GD20250101001", "thing2": "道路积水请处理", "time3": "2025-01-02 15:01"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now


def wechat_rig(clock: Clock, **app_kwargs: Any) -> tuple[WechatSubscribeClient, fake_wechat.WechatFake]:
    app = fake_wechat.create_app(clock=clock, **app_kwargs)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://api.weixin.qq.com")
    client = WechatSubscribeClient(http, appid=APPID, secret=SECRET, clock=clock)
    fake: fake_wechat.WechatFake = app.state.fake
    return client, fake


def msg(**changes: Any) -> WechatMessage:
    fields: dict[str, Any] = {"openid": OPENID, "template_id": TPL, "data": dict(DATA), "page": "pages/order/detail"}
    return WechatMessage(**(fields | changes))


def grant(fake: fake_wechat.WechatFake, count: int = 1, long_term: bool = False) -> None:
    fake.openids[APPID].add(OPENID)
    fake.credits[(OPENID, TPL)] = fake_wechat._Credit(count, long_term)


async def test_subscribe_send_consumes_one_time_credit_then_43101_falls_back() -> None:
    client, fake = wechat_rig(Clock())
    grant(fake)
    first = await client.send(msg())
    assert (first.outcome, first.code, first.fallback) == ("sent", "0", False)
    assert fake.messages[0]["data"] == DATA and fake.messages[0]["page"] == "pages/order/detail"
    second = await client.send(msg())
    assert (second.outcome, second.code, second.fallback) == ("rejected", "43101", True)
    assert len(fake.messages) == 1


async def test_long_term_subscription_is_not_consumed() -> None:
    client, fake = wechat_rig(Clock())
    grant(fake, 0, long_term=True)
    results = [await client.send(msg()) for _ in range(3)]
    assert [r.outcome for r in results] == ["sent"] * 3


async def test_stable_token_is_cached_until_shortly_before_expiry() -> None:
    clock = Clock()
    client, fake = wechat_rig(clock)
    grant(fake, 0, long_term=True)
    await client.send(msg())
    await client.send(msg())
    assert fake.token_fetches == 1
    clock.now += 7200 - 200  # inside the last 5 minutes: the client refreshes, the platform rotates
    first = await client.tokens.get()
    assert fake.token_fetches == 2
    assert (await client.send(msg())).outcome == "sent"
    assert await client.tokens.get() == first


async def test_expired_token_42001_is_refetched_and_the_send_retried_once() -> None:
    client, fake = wechat_rig(Clock())
    grant(fake, 0, long_term=True)
    await client.send(msg())
    for token in fake.tokens.values():  # expired early on the platform's side, the cache does not know
        token.expires_at = fake.clock() - 1
    result = await client.send(msg())
    assert result.outcome == "sent"
    assert fake.token_fetches == 2 and len(fake.messages) == 2


async def test_token_refused_but_still_handed_out_forces_a_refresh() -> None:
    """40001 for a token the platform still returns in normal mode: only force_refresh helps."""
    client, fake = wechat_rig(Clock())
    grant(fake, 0, long_term=True)
    token = await client.tokens.get()
    fake.tokens[token].revoked = True  # invalid on the API, yet current in stable_token's eyes
    fake.current[APPID] = token
    fake.tokens[token].revoked = False
    real_check = fake.check_token
    refused_once: list[str] = []

    def check(value: str | None) -> Any:
        if value == token and not refused_once:
            refused_once.append(value)
            return fake_wechat._err(40001, "invalid credential, access_token is invalid or not latest"), ""
        return real_check(value)

    fake.check_token = check  # type: ignore[method-assign]
    result = await client.send(msg())
    assert result.outcome == "sent"
    assert fake.forced.get(APPID), "a forced refresh was asked for"
    assert await client.tokens.get() != token


async def test_force_refresh_is_rate_limited_by_the_fake() -> None:
    clock = Clock()
    _client, fake = wechat_rig(clock)
    body = {"grant_type": "client_credential", "appid": APPID, "secret": SECRET, "force_refresh": True}
    first = fake.stable_token(body)
    again = fake.stable_token(body)
    assert b'"access_token"' in first.body
    assert b'"errcode":45011' in again.body


@pytest.mark.parametrize(
    ("changes", "errcode", "fallback"),
    [
        ({"template_id": "nope"}, "40037", True),
        ({"data": DATA | {"thing2": "这" * 21}}, "47003", True),
        ({"data": {k: v for k, v in DATA.items() if k != "time3"}}, "47003", True),
        ({"openid": "not-an-openid"}, "40003", True),
    ],
)
async def test_bad_requests_get_wechats_errcodes(changes: dict[str, Any], errcode: str, fallback: bool) -> None:
    client, fake = wechat_rig(Clock())
    grant(fake)
    result = await client.send(msg(**changes))
    assert (result.outcome, result.code, result.fallback) == ("rejected", errcode, fallback)
    assert fake.messages == []


async def test_page_must_be_in_the_live_version() -> None:
    client, fake = wechat_rig(Clock(), pages=["pages/index"])
    grant(fake)
    result = await client.send(msg(page="pages/order/detail?id=5"))
    assert (result.code, result.fallback) == ("41030", True)


async def test_wrong_secret_is_a_refusal_that_falls_back() -> None:
    app = fake_wechat.create_app()
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://api.weixin.qq.com")
    client = WechatSubscribeClient(http, appid=APPID, secret="wrong")
    result = await client.send(msg())
    assert (result.outcome, result.code, result.fallback) == ("rejected", "token.40125", True)


async def test_busy_and_server_errors_are_retryable_and_timeouts_ambiguous() -> None:
    client, fake = wechat_rig(Clock())
    grant(fake, 5)
    fake.faults.append(fake_wechat.Fault(kind="errcode", errcode=-1))
    assert (await client.send(msg())).outcome == "retryable"
    fake.faults.append(fake_wechat.Fault(kind="server_error"))
    assert (await client.send(msg())).outcome == "retryable"

    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=request)

    stalled = WechatSubscribeClient(
        httpx.AsyncClient(transport=httpx.MockTransport(timeout)), appid=APPID, secret=SECRET
    )
    stalled.tokens._token = fake_wechat_token()  # a cached token: the failure is the send itself
    result = await stalled.send(msg())
    assert result.outcome == "ambiguous"
    assert (await stalled.lookup("", "x", 0)).state == "unknown"  # WeChat cannot be asked afterwards


def fake_wechat_token() -> Any:
    from notify.providers.tokens import Token

    return Token("wx" + "a" * 60, 1e12)


async def test_concurrent_sends_to_one_user_get_43108() -> None:
    client, fake = wechat_rig(Clock())
    grant(fake, 5)
    await client.tokens.get()
    fake.faults.append(fake_wechat.Fault(kind="delay", delay_s=0.2))
    a, b = await asyncio.gather(client.send(msg()), client.send(msg()))
    assert sorted([a.code, b.code]) == ["0", "43108"]
    assert next(r for r in (a, b) if r.code == "43108").outcome == "retryable"


# --- WeCom ---------------------------------------------------------------------------------------


def wecom_rig(clock: Clock, **kwargs: Any) -> tuple[WecomAppClient, fake_wecom.WecomFake]:
    app = fake_wecom.create_app(clock=clock)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://qyapi.weixin.qq.com")
    options: dict[str, Any] = {"corpid": fake_wecom.DEFAULT_CORP, "corpsecret": CORPSECRET, "agentid": AGENT}
    client = WecomAppClient(http, clock=clock, **(options | kwargs))
    fake: fake_wecom.WecomFake = app.state.fake
    return client, fake


def staff(**changes: Any) -> WecomMessage:
    fields: dict[str, Any] = {"userid": "ZhangSan", "msgtype": "text", "content": "工单GD20250101001已超时，请处理"}
    return WecomMessage(**(fields | changes))


@pytest.mark.parametrize(
    "message",
    [
        staff(),
        staff(msgtype="markdown", content="**督办** 工单 GD20250101001"),
        staff(msgtype="textcard", title="督办通知", content="工单已超时", url="https://gridline.example/t/1"),
    ],
)
async def test_wecom_sends_each_message_type(message: WecomMessage) -> None:
    client, fake = wecom_rig(Clock())
    result = await client.send(message)
    assert (result.outcome, result.code) == ("sent", "0") and result.provider_message_id
    (delivered,) = fake.messages
    assert delivered["userid"] == "zhangsan" and delivered["msgtype"] == message.msgtype


async def test_wecom_unknown_member_comes_back_in_invaliduser_or_81013() -> None:
    client, fake = wecom_rig(Clock())
    result = await client.send(staff(userid="nobody"))
    assert (result.outcome, result.code, result.fallback) == ("rejected", "81013", True)
    # Partial: the request succeeds, the fake names the invalid one.
    token = await client.tokens.get()
    body = client.body(staff()) | {"touser": "zhangsan|Ghost"}
    http = client._http
    reply = (await http.post(f"/cgi-bin/message/send?access_token={token}", json=body)).json()
    assert reply["errcode"] == 0 and reply["invaliduser"] == "ghost"
    assert len(fake.messages) == 1


async def test_wecom_token_cached_and_refreshed_after_expiry() -> None:
    clock = Clock()
    client, fake = wecom_rig(clock)
    await client.send(staff())
    await client.send(staff(content="second"))
    assert fake.token_fetches == 1
    for token in fake.tokens.values():
        token.expires_at = clock.now - 1  # 42001 on the next send
    assert (await client.send(staff(content="third"))).outcome == "sent"
    assert fake.token_fetches == 2 and len(fake.messages) == 3


async def test_wecom_duplicate_check_makes_a_resend_harmless() -> None:
    clock = Clock()
    client, fake = wecom_rig(clock)
    assert (await client.send(staff())).outcome == "sent"
    assert (await client.send(staff())).outcome == "sent"  # identical JSON inside the window
    assert len(fake.messages) == 1 and fake.dropped[0]["reason"] == "duplicate_check"
    assert (await client.lookup("", "x", clock.now - 60)).state == "not_found"
    assert (await client.lookup("", "x", clock.now - 3600)).state == "unknown"


async def test_wecom_member_limit_drops_silently_and_config_errors_fall_back() -> None:
    client, fake = wecom_rig(Clock())
    results = [await client.send(staff(content=f"m{i}")) for i in range(31)]
    assert all(r.outcome == "sent" for r in results)
    assert len(fake.messages) == 30 and fake.dropped[-1]["reason"] == "member_rate_limit"
    fake.trusted_ip = False
    blocked = await client.send(staff(content="x"))
    assert (blocked.code, blocked.fallback) == ("60020", True)
    bad_agent, _ = wecom_rig(Clock(), agentid=1000003)
    assert (await bad_agent.send(staff())).code == "40056"
    bad_secret, _ = wecom_rig(Clock(), corpsecret="wrong")
    refused = await bad_secret.send(staff())
    assert (refused.outcome, refused.code, refused.fallback) == ("rejected", "token.40001", True)


async def test_wecom_busy_is_retryable_and_long_text_is_cut_to_2048_bytes() -> None:
    client, fake = wecom_rig(Clock())
    fake.faults.append(fake_wecom.Fault(kind="errcode", errcode=-1))
    assert (await client.send(staff())).outcome == "retryable"
    long = "超" * 1000  # 3000 bytes
    assert len(fit_bytes(long).encode()) <= 2048
    assert (await client.send(staff(content=long))).outcome == "sent"


def test_cli_builds_both_fakes() -> None:
    app, args = fakes_cli.build(["wechat", "--port", "1", "--template", "T1:thing1,time2", "--page", "pages/a"])
    assert args.fake == "wechat" and app.state.fake.templates == {"T1": ["thing1", "time2"]}
    app, _ = fakes_cli.build(["wecom", "--port", "1", "--app", "1000009:s3cret", "--user", "wangwu"])
    assert app.state.fake.apps == {1000009: "s3cret"} and "wangwu" in app.state.fake.users


# --- the reference's documented examples (§3.2–3.4), byte for byte where it gives them -----------


async def test_wechat_client_speaks_the_documented_request_and_reply_bodies() -> None:
    """§3.2 stable_token and §3.3 subscribeMessage.send, answered with the documented bodies."""
    seen: list[tuple[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((f"{request.method} {request.url.path}?{request.url.query.decode()}", json.loads(request.content)))
        if request.url.path == "/cgi-bin/stable_token":
            return httpx.Response(200, json={"access_token": "ACCESS_TOKEN", "expires_in": 7200})
        return httpx.Response(200, json={"errcode": 0, "errmsg": "ok"})

    client = WechatSubscribeClient(
        httpx.AsyncClient(transport=httpx.MockTransport(handler)), appid="APPID", secret="SECRET"
    )
    documented = {
        "touser": "OPENID",
        "template_id": "TEMPLATE_ID",
        "page": "pages/order/detail?id=5",
        "miniprogram_state": "formal",
        "lang": "zh_CN",
        "data": {
            "thing1": {"value": "道路积水请处理"},
            "character_string2": {"value": "GD20250101001"},
            "time3": {"value": "2025-01-02 15:01"},
            "phrase4": {"value": "已超时"},
        },
    }
    data = {k: v["value"] for k, v in documented["data"].items()}  # type: ignore[attr-defined]
    msg = WechatMessage("OPENID", "TEMPLATE_ID", data, "pages/order/detail?id=5")
    result = await client.send(msg)
    assert (result.outcome, result.code) == ("sent", "0")
    assert seen[0] == (
        "POST /cgi-bin/stable_token?",
        {"grant_type": "client_credential", "appid": "APPID", "secret": "SECRET"},
    )
    assert seen[1] == ("POST /cgi-bin/message/subscribe/send?access_token=ACCESS_TOKEN", documented)
    # The documented refusal (§3.3) is classified by its errcode, rid and all.
    refusal = {
        "errcode": 47003,
        "errmsg": "argument invalid! data.phrase3.value invalid rid: 6685f720-7f0962fc-0273704f",
    }
    assert fake_wechat._fits("phrase", "已超时") and not fake_wechat._fits("phrase", "overdue")
    reply = httpx.Response(200, json=refusal)

    def refuse(request: httpx.Request) -> httpx.Response:
        return reply if "subscribe" in request.url.path else httpx.Response(200, json={"access_token": "T" * 40})

    refused = await WechatSubscribeClient(
        httpx.AsyncClient(transport=httpx.MockTransport(refuse)), appid="APPID", secret="SECRET"
    ).send(msg)
    assert (refused.outcome, refused.code, refused.fallback) == ("rejected", "47003", True)
    assert "argument invalid! data.phrase3.value invalid" in refused.message


async def test_wecom_client_speaks_the_documented_request_and_reply_bodies() -> None:
    """§3.4 gettoken and message/send, answered with the documented bodies (invaliduser included)."""
    seen: list[tuple[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        seen.append((f"{request.method} {request.url.path}?{request.url.query.decode()}", body))
        if request.url.path == "/cgi-bin/gettoken":
            return httpx.Response(
                200, json={"errcode": 0, "errmsg": "ok", "access_token": "accesstoken000001", "expires_in": 7200}
            )
        return httpx.Response(
            200,
            json={
                "errcode": 0,
                "errmsg": "ok",
                "invaliduser": "userid1|userid2",
                "invalidparty": "",
                "invalidtag": "",
                "msgid": "xxxx",
                "response_code": "xyzxyz",
            },
        )

    client = WecomAppClient(
        httpx.AsyncClient(transport=httpx.MockTransport(handler)), corpid="ID", corpsecret="SECRET", agentid=1000002
    )
    text = "工单GD20250101001已超时4小时，已升级至二级处理人。"
    ok = await client.send(WecomMessage("UserID3", "text", text))
    assert (ok.outcome, ok.provider_message_id) == ("sent", "xxxx")
    assert seen[0] == ("GET /cgi-bin/gettoken?corpid=ID&corpsecret=SECRET", None)
    assert seen[1] == (
        "POST /cgi-bin/message/send?access_token=accesstoken000001",
        {
            "touser": "UserID3",
            "msgtype": "text",
            "agentid": 1000002,
            "text": {"content": text},
            "safe": 0,
            "enable_duplicate_check": 1,
            "duplicate_check_interval": 1800,
        },
    )
    # The same documented reply, but naming our recipient (WeCom lower-cases ids): nothing was sent.
    invalid = await client.send(WecomMessage("UserID1", "text", text))
    assert (invalid.outcome, invalid.code, invalid.fallback) == ("rejected", "invaliduser", True)
