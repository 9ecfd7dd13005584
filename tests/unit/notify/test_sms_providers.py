"""SMS clients against the fake providers: real signatures, real reply shapes, outcome classification."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from gridline_fakes import __main__ as fakes_cli
from gridline_fakes import aliyun_sms as fake_aliyun
from gridline_fakes import tencent_sms as fake_tencent
from notify.providers import AliyunSmsClient, SmsMessage, SmsProvider, TencentSmsClient
from notify.providers.aliyun_sms import rpc_v2_signature
from notify.providers.base import national_number, redact_provider_text
from notify.providers.tencent_sms import tc3_authorization, template_param_set

ALIYUN_BASE = "https://dysmsapi.aliyuncs.com"
TENCENT_BASE = "https://sms.tencentcloudapi.com"
PHONE = "13800138000"
TENCENT_ID, TENCENT_KEY = next(iter(fake_tencent.DEFAULT_KEYS.items()))


def aliyun_msg(**changes: Any) -> SmsMessage:
    fields: dict[str, Any] = {
        "phone": PHONE,
        "sign_name": "某市12345",
        "template_code": "SMS_123456789",
        "template_params": {"order": "GD20250101001", "hours": "4"},
        "out_id": "wo-1001:esc-2:sms",
    }
    return SmsMessage(**(fields | changes))


def tencent_msg(**changes: Any) -> SmsMessage:
    fields: dict[str, Any] = {
        "phone": f"+86{PHONE}",
        "sign_name": "某市12345",
        "template_code": "1110",
        "template_params": {"1": "GD20250101001", "2": "4"},
        "out_id": "wo-1001:esc-2:sms",
    }
    return SmsMessage(**(fields | changes))


def asgi(app: FastAPI, base_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


def aliyun(http: httpx.AsyncClient, **kwargs: Any) -> AliyunSmsClient:
    options: dict[str, Any] = {
        "access_key_id": "testId",
        "access_key_secret": "testSecret",
        "base_url": str(http.base_url) or ALIYUN_BASE,
    }
    return AliyunSmsClient(http, **(options | kwargs))


def tencent(http: httpx.AsyncClient, **kwargs: Any) -> TencentSmsClient:
    options: dict[str, Any] = {
        "secret_id": TENCENT_ID,
        "secret_key": TENCENT_KEY,
        "sdk_app_id": "1400006666",
        "base_url": str(http.base_url) or TENCENT_BASE,
    }
    return TencentSmsClient(http, **(options | kwargs))


async def recorded(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await http.get("/_fake/messages")
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()
    return result


async def inject(http: httpx.AsyncClient, **fault: Any) -> None:
    (await http.post("/_fake/faults", json=fault)).raise_for_status()


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """The app under uvicorn on a free loopback port: ASGITransport cannot time out a read."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def test_clients_satisfy_protocol() -> None:
    http = httpx.AsyncClient()
    providers: list[SmsProvider] = [aliyun(http), tencent(http)]
    assert [p.name for p in providers] == ["aliyun", "tencent"]


def test_message_repr_hides_phone() -> None:
    assert PHONE not in repr(aliyun_msg())


@pytest.mark.parametrize(
    ("raw", "national"),
    [("+8613800138000", PHONE), ("008613800138000", PHONE), ("8613800138000", PHONE), (PHONE, PHONE), ("110", "110")],
)
def test_national_number(raw: str, national: str) -> None:
    assert national_number(raw) == national


def test_redact_provider_text() -> None:
    text = "bad 13800138000 and +8613900139000. server string to sign is:GET&%2F&PhoneNumbers%3D13800138000"
    assert redact_provider_text(text) == "bad 138****8000 and 139****9000."


def test_template_param_set_is_positional() -> None:
    assert template_param_set({"2": "b", "1": "a", "10": "j"}) == ["a", "b", "j"]
    assert template_param_set({"order": "x", "hours": "4"}) == ["x", "4"]


# --- Aliyun --------------------------------------------------------------------------------------


async def test_aliyun_v3_request_matches_derived_vector() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"Code": "OK", "Message": "OK", "BizId": "1^0", "RequestId": "r"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        client = AliyunSmsClient(
            http,
            access_key_id="testId",
            access_key_secret="testSecret",
            clock=lambda: 1735787045.0,
            nonce=lambda: "0123456789abcdef0123456789abcdef",
        )
        result = await client.send(aliyun_msg(phone="+8613800138000"))
    assert (result.outcome, result.provider_message_id) == ("sent", "1^0")
    [request] = seen
    assert str(request.url) == (
        "https://dysmsapi.aliyuncs.com/?OutId=wo-1001%3Aesc-2%3Asms&PhoneNumbers=13800138000"
        "&SignName=%E6%9F%90%E5%B8%8212345&TemplateCode=SMS_123456789"
        "&TemplateParam=%7B%22order%22%3A%22GD20250101001%22%2C%22hours%22%3A%224%22%7D"
    )
    assert request.method == "POST" and request.content == b""
    assert request.headers["x-acs-date"] == "2025-01-02T03:04:05Z"
    assert request.headers["Authorization"] == (
        "ACS3-HMAC-SHA256 Credential=testId,"
        "SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,"
        "Signature=d775b73cda2eb38e2a9ff1ce14156afe583744be5223700b251e929a71a18f9c"
    )


@pytest.mark.parametrize("version", ["v3", "v2"])
async def test_aliyun_success_is_recorded(version: str) -> None:
    async with asgi(fake_aliyun.create_app(fake_aliyun.DEFAULT_KEYS), ALIYUN_BASE) as http:
        result = await aliyun(http, signature_version=version).send(aliyun_msg(phone="+8613800138000"))
        [sent] = await recorded(http)
    assert (result.provider, result.outcome, result.code) == ("aliyun", "sent", "OK")
    assert result.provider_message_id is not None and re.fullmatch(r"\d{18}\^0", result.provider_message_id)
    assert sent["phone"] == PHONE
    assert sent["sign_name"] == "某市12345" and sent["template"] == "SMS_123456789"
    assert sent["params"] == {"order": "GD20250101001", "hours": "4"}
    assert sent["out_id"] == "wo-1001:esc-2:sms"
    assert sent["provider_id"] == result.provider_message_id
    assert sent["signature_version"] == version and sent["received_at"]


@pytest.mark.parametrize("version", ["v3", "v2"])
async def test_aliyun_wrong_secret_is_detected_and_scrubbed(version: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with asgi(fake_aliyun.create_app(fake_aliyun.DEFAULT_KEYS), ALIYUN_BASE) as http:
        result = await aliyun(http, signature_version=version, access_key_secret="wrong").send(aliyun_msg())
        assert await recorded(http) == []
    assert (result.outcome, result.code) == ("rejected", "SignatureDoesNotMatch")
    assert PHONE not in result.message and "string to sign" not in result.message
    # httpx itself logs request URLs (V3 carries the number in the query) — that logger is the
    # deployment's to silence; ours and the fake's must never carry it.
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert ours and not any(PHONE in line for line in ours)


async def test_aliyun_unknown_access_key() -> None:
    async with asgi(fake_aliyun.create_app(fake_aliyun.DEFAULT_KEYS), ALIYUN_BASE) as http:
        result = await aliyun(http, access_key_id="nobody").send(aliyun_msg())
    assert (result.outcome, result.code) == ("rejected", "InvalidAccessKeyId.NotFound")


@pytest.mark.parametrize("version", ["v3", "v2"])
async def test_aliyun_stale_timestamp_is_retryable(version: str) -> None:
    async with asgi(fake_aliyun.create_app(fake_aliyun.DEFAULT_KEYS), ALIYUN_BASE) as http:
        client = aliyun(http, signature_version=version, clock=lambda: time.time() - 3600)
        result = await client.send(aliyun_msg())
    assert (result.outcome, result.code) == ("retryable", "InvalidTimeStamp.Expired")


@pytest.mark.parametrize("version", ["v3", "v2"])
async def test_aliyun_nonce_reuse_is_refused(version: str) -> None:
    async with asgi(fake_aliyun.create_app(fake_aliyun.DEFAULT_KEYS), ALIYUN_BASE) as http:
        client = aliyun(http, signature_version=version, nonce=lambda: "same-nonce")
        first = await client.send(aliyun_msg())
        second = await client.send(aliyun_msg())
        assert len(await recorded(http)) == 1
    assert first.outcome == "sent"
    assert (second.outcome, second.code) == ("retryable", "SignatureNonceUsed")


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"template_code": "SMS_000000000"}, "isv.SMS_TEMPLATE_ILLEGAL"),
        ({"sign_name": "未报备签名"}, "isv.SMS_SIGNATURE_ILLEGAL"),
        ({"phone": "1380013800"}, "isv.MOBILE_NUMBER_ILLEGAL"),
        ({"template_params": {"order": "GD20250101001"}}, "isv.TEMPLATE_MISSING_PARAMETERS"),
    ],
)
async def test_aliyun_bad_params_are_rejected(changes: dict[str, Any], code: str) -> None:
    async with asgi(fake_aliyun.create_app(fake_aliyun.DEFAULT_KEYS), ALIYUN_BASE) as http:
        result = await aliyun(http).send(aliyun_msg(**changes))
        assert await recorded(http) == []
    assert (result.outcome, result.code, result.provider_message_id) == ("rejected", code, None)


async def test_aliyun_balance_exhausted_is_rejected() -> None:
    async with asgi(fake_aliyun.create_app(fake_aliyun.DEFAULT_KEYS, balance=1), ALIYUN_BASE) as http:
        client = aliyun(http)
        assert (await client.send(aliyun_msg())).outcome == "sent"
        result = await client.send(aliyun_msg(out_id="2"))
    assert (result.outcome, result.code) == ("rejected", "isv.AMOUNT_NOT_ENOUGH")


@pytest.mark.parametrize(
    ("limits", "message", "retry_after"),
    [
        (fake_aliyun.FlowLimits(per_minute=1), "触发分钟级流控Permits:1", 60.0),
        (fake_aliyun.FlowLimits(per_hour=2), "触发小时级流控Permits:2", 3600.0),
        (fake_aliyun.FlowLimits(per_day=2), "触发天级流控Permits:2", 86400.0),
    ],
)
async def test_aliyun_per_phone_flow_control(limits: fake_aliyun.FlowLimits, message: str, retry_after: float) -> None:
    app = fake_aliyun.create_app(fake_aliyun.DEFAULT_KEYS, flow_limits=limits)
    async with asgi(app, ALIYUN_BASE) as http:
        client = aliyun(http)
        results = [await client.send(aliyun_msg(out_id=str(i))) for i in range(3)]
        other_phone = await client.send(aliyun_msg(phone="13900139000"))
    assert results[0].outcome == "sent"
    assert (results[-1].outcome, results[-1].code) == ("retryable", "isv.BUSINESS_LIMIT_CONTROL")
    assert (results[-1].message, results[-1].retry_after_s) == (message, retry_after)
    assert other_phone.outcome == "sent"


@pytest.mark.parametrize(
    ("fault", "outcome", "code", "retry_after"),
    [
        ({"kind": "throttling", "retry_after_s": 5}, "retryable", "Throttling.User", 5.0),
        ({"kind": "server_error"}, "retryable", "ServiceUnavailable", None),
        ({"kind": "server_error", "status": 500, "code": "InternalError"}, "retryable", "InternalError", None),
        ({"kind": "error", "code": "isp.SYSTEM_ERROR"}, "retryable", "isp.SYSTEM_ERROR", None),
        ({"kind": "error", "code": "isv.DAY_LIMIT_CONTROL"}, "rejected", "isv.DAY_LIMIT_CONTROL", None),
    ],
)
async def test_aliyun_injected_faults(
    fault: dict[str, Any], outcome: str, code: str, retry_after: float | None
) -> None:
    async with asgi(fake_aliyun.create_app(fake_aliyun.DEFAULT_KEYS), ALIYUN_BASE) as http:
        await inject(http, **fault)
        client = aliyun(http)
        result = await client.send(aliyun_msg())
        assert await recorded(http) == []
        after = await client.send(aliyun_msg())
    assert (result.outcome, result.code, result.retry_after_s) == (outcome, code, retry_after)
    assert after.outcome == "sent"


async def test_aliyun_read_timeout_is_ambiguous_and_the_sms_went_out() -> None:
    app = fake_aliyun.create_app(fake_aliyun.DEFAULT_KEYS)
    async with serve(app) as base_url, httpx.AsyncClient(base_url=base_url) as http:
        await inject(http, kind="delay", delay_s=1.0)
        result = await aliyun(http, timeout_s=0.2).send(aliyun_msg())
        sent = await recorded(http)
    assert (result.outcome, result.code) == ("ambiguous", "transport.ReadTimeout")
    assert [m["out_id"] for m in sent] == ["wo-1001:esc-2:sms"]


async def test_aliyun_connect_error_is_retryable() -> None:
    async with serve(FastAPI()) as base_url:
        pass  # the port is free again once the server stops
    async with httpx.AsyncClient() as http:
        result = await aliyun(http, base_url=base_url).send(aliyun_msg())
    assert (result.outcome, result.code) == ("retryable", "transport.ConnectError")


@pytest.mark.parametrize(
    ("respond", "outcome"),
    [
        (lambda r: httpx.Response(200, text="<html>oops</html>"), "ambiguous"),
        (lambda r: httpx.Response(200, json={"RequestId": "r"}), "ambiguous"),
        (lambda r: httpx.Response(502, text="Bad Gateway"), "retryable"),
        (lambda r: httpx.Response(403, text="Forbidden"), "rejected"),
    ],
)
async def test_aliyun_unreadable_replies(respond: Callable[[httpx.Request], httpx.Response], outcome: str) -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(respond)) as http:
        result = await aliyun(http).send(aliyun_msg())
    assert result.outcome == outcome


async def test_connection_dropped_after_send_is_ambiguous() -> None:
    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(drop)) as http:
        results = [await aliyun(http).send(aliyun_msg()), await tencent(http).send(tencent_msg())]
    assert [(r.outcome, r.code) for r in results] == [("ambiguous", "transport.RemoteProtocolError")] * 2


# --- Aliyun fake, driven directly ----------------------------------------------------------------


def _v2_params(**changes: str) -> dict[str, str]:
    params = {
        "AccessKeyId": "testId",
        "Action": "SendSms",
        "Format": "XML",
        "OutId": "o-1",
        "PhoneNumbers": f"{PHONE},13900139000",
        "RegionId": "cn-hangzhou",
        "SignName": "某市12345",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "n-" + str(time.time_ns()),
        "SignatureVersion": "1.0",
        "TemplateCode": "SMS_123456789",
        "TemplateParam": '{"order":"A","hours":"1"}',
        "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "Version": "2017-05-25",
    }
    params |= changes
    params["Signature"] = rpc_v2_signature("GET", params, "testSecret")
    return params


async def test_aliyun_fake_v2_get_in_xml_with_two_numbers() -> None:
    async with asgi(fake_aliyun.create_app(fake_aliyun.DEFAULT_KEYS), ALIYUN_BASE) as http:
        response = await http.get("/", params=_v2_params())
        sent = await recorded(http)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    assert "<Code>OK</Code>" in response.text and "<BizId>" in response.text
    assert [m["phone"] for m in sent] == [PHONE, "13900139000"]
    assert sent[0]["provider_id"] == sent[1]["provider_id"]


async def test_aliyun_fake_gateway_error_shape() -> None:
    async with asgi(fake_aliyun.create_app(fake_aliyun.DEFAULT_KEYS), ALIYUN_BASE) as http:
        params = _v2_params(Format="JSON")
        params["Signature"] = "AAAA" + params["Signature"][4:]
        response = await http.get("/", params=params)
    body = response.json()
    assert response.status_code == 400
    assert set(body) == {"RequestId", "HostId", "Code", "Message", "Recommend"}
    assert body["Code"] == "SignatureDoesNotMatch" and "server string to sign is:" in body["Message"]


async def test_aliyun_fake_v3_checks_body_hash() -> None:
    seen: list[httpx.Request] = []

    def capture(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"Code": "OK"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(capture), base_url=ALIYUN_BASE) as mock:
        await aliyun(mock).send(aliyun_msg())
    signed = seen[0]
    async with asgi(fake_aliyun.create_app(fake_aliyun.DEFAULT_KEYS), ALIYUN_BASE) as http:
        tampered = await http.post(str(signed.url), headers=dict(signed.headers), content=b"x=1")
    assert (tampered.status_code, tampered.json()["Code"]) == (400, "SignatureDoesNotMatch")


async def test_aliyun_fake_rejects_unsigned_and_wrong_action() -> None:
    async with asgi(fake_aliyun.create_app(fake_aliyun.DEFAULT_KEYS), ALIYUN_BASE) as http:
        unsigned = await http.post("/", params={"Action": "SendSms", "Format": "JSON"})
        wrong = await http.get("/", params=_v2_params(Action="SendBatchSms", Format="JSON"))
    assert (unsigned.status_code, unsigned.json()["Code"]) == (400, "MissingAccessKeyId")
    assert (wrong.status_code, wrong.json()["Code"]) == (404, "InvalidAction.NotFound")


async def test_fake_fault_queue_and_reset() -> None:
    async with asgi(fake_aliyun.create_app(fake_aliyun.DEFAULT_KEYS), ALIYUN_BASE) as http:
        await inject(http, kind="server_error", count=2)
        assert len((await http.get("/_fake/faults")).json()) == 2
        client = aliyun(http)
        outcomes = [(await client.send(aliyun_msg())).outcome for _ in range(3)]
        assert outcomes == ["retryable", "retryable", "sent"]
        await inject(http, kind="server_error")
        assert (await http.delete("/_fake/faults")).json() == []
        assert (await client.send(aliyun_msg())).outcome == "sent"
        assert len(await recorded(http)) == 2
        (await http.post("/_fake/reset")).raise_for_status()
        assert await recorded(http) == []
        assert (await http.post("/_fake/faults", json={"kind": "nonsense"})).status_code == 422


# --- Tencent -------------------------------------------------------------------------------------


async def test_tencent_request_matches_derived_vector() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status = {"SerialNo": "5000:1", "Code": "Ok", "Message": "send success"}
        return httpx.Response(200, json={"Response": {"SendStatusSet": [status], "RequestId": "r"}})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        client = TencentSmsClient(
            http, secret_id=TENCENT_ID, secret_key=TENCENT_KEY, sdk_app_id="1400006666", clock=lambda: 1735787045.0
        )
        result = await client.send(tencent_msg(phone=PHONE, sign_name="腾讯云"))
    assert (result.outcome, result.provider_message_id) == ("sent", "5000:1")
    [request] = seen
    assert (
        request.content
        == (
            '{"PhoneNumberSet":["+8613800138000"],"SmsSdkAppId":"1400006666","SignName":"腾讯云","TemplateId":"1110",'
            '"TemplateParamSet":["GD20250101001","4"],"SessionContext":"wo-1001:esc-2:sms"}'
        ).encode()
    )
    assert request.headers["X-TC-Timestamp"] == "1735787045"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Authorization"] == (
        f"TC3-HMAC-SHA256 Credential={TENCENT_ID}/2025-01-02/sms/tc3_request, SignedHeaders=content-type;host, "
        "Signature=0db691ea428da43c8f98ba00ce4701e2b3898a283e0d0180b5befcf1ad1339f8"
    )


async def test_tencent_success_is_recorded(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with asgi(fake_tencent.create_app(fake_tencent.DEFAULT_KEYS), TENCENT_BASE) as http:
        result = await tencent(http).send(tencent_msg())
        [sent] = await recorded(http)
    assert (result.provider, result.outcome, result.code) == ("tencent", "sent", "Ok")
    assert result.provider_message_id is not None and re.fullmatch(r"5000:\d{28}", result.provider_message_id)
    assert sent["phone"] == f"+86{PHONE}" and sent["params"] == ["GD20250101001", "4"]
    assert (sent["sign_name"], sent["template"], sent["out_id"]) == ("某市12345", "1110", "wo-1001:esc-2:sms")
    assert sent["provider_id"] == result.provider_message_id
    assert not any(PHONE in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("client_changes", "app_changes", "outcome", "code"),
    [
        ({"secret_key": "wrong"}, {}, "rejected", "AuthFailure.SignatureFailure"),
        ({"secret_id": "AKIDnobody"}, {}, "rejected", "AuthFailure.SecretIdNotFound"),
        ({"clock": lambda: time.time() - 600}, {}, "retryable", "AuthFailure.SignatureExpire"),
        ({"sdk_app_id": "1400000000"}, {}, "rejected", "InvalidParameterValue.SdkAppIdNotExist"),
        ({"region": "eu-frankfurt"}, {}, "rejected", "UnsupportedRegion"),
        ({}, {"balance": 0}, "rejected", "FailedOperation.InsufficientBalanceInSmsPackage"),
    ],
)
async def test_tencent_request_level_errors(
    client_changes: dict[str, Any], app_changes: dict[str, Any], outcome: str, code: str
) -> None:
    async with asgi(fake_tencent.create_app(fake_tencent.DEFAULT_KEYS, **app_changes), TENCENT_BASE) as http:
        result = await tencent(http, **client_changes).send(tencent_msg())
        assert await recorded(http) == []
    assert (result.outcome, result.code, result.provider_message_id) == (outcome, code, None)


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"template_code": "9999"}, "FailedOperation.TemplateIncorrectOrUnapproved"),
        ({"sign_name": "未报备签名"}, "FailedOperation.SignatureIncorrectOrUnapproved"),
        ({"template_params": {"1": "only one"}}, "FailedOperation.TemplateParamSetNotMatchApprovedTemplate"),
        ({"phone": "+861380013800"}, "InvalidParameterValue.IncorrectPhoneNumber"),
    ],
)
async def test_tencent_bad_params_are_rejected(changes: dict[str, Any], code: str) -> None:
    async with asgi(fake_tencent.create_app(fake_tencent.DEFAULT_KEYS), TENCENT_BASE) as http:
        result = await tencent(http).send(tencent_msg(**changes))
        assert await recorded(http) == []
    assert (result.outcome, result.code) == ("rejected", code)


async def test_tencent_same_content_within_30s_is_retryable() -> None:
    async with asgi(fake_tencent.create_app(fake_tencent.DEFAULT_KEYS), TENCENT_BASE) as http:
        client = tencent(http)
        first = await client.send(tencent_msg())
        again = await client.send(tencent_msg())
        different = await client.send(tencent_msg(template_params={"1": "GD20250101002", "2": "4"}))
    assert (first.outcome, different.outcome) == ("sent", "sent")
    assert (again.outcome, again.code, again.retry_after_s) == (
        "retryable",
        "LimitExceeded.PhoneNumberThirtySecondLimit",
        30.0,
    )


async def test_tencent_daily_limit_per_phone() -> None:
    limits = fake_tencent.FlowLimits(per_30s_same_content=None, per_day=2)
    app = fake_tencent.create_app(fake_tencent.DEFAULT_KEYS, flow_limits=limits)
    async with asgi(app, TENCENT_BASE) as http:
        client = tencent(http)
        results = [await client.send(tencent_msg()) for _ in range(3)]
    assert [r.outcome for r in results] == ["sent", "sent", "retryable"]
    assert (results[2].code, results[2].retry_after_s) == ("LimitExceeded.PhoneNumberDailyLimit", 86400.0)


@pytest.mark.parametrize(
    ("fault", "outcome", "code"),
    [
        ({"kind": "throttling"}, "retryable", "RequestLimitExceeded"),
        ({"kind": "server_error"}, "retryable", "http.502"),
        ({"kind": "server_error", "status": 503}, "retryable", "http.503"),
        ({"kind": "error"}, "ambiguous", "InternalError.Timeout"),
        ({"kind": "error", "code": "LimitExceeded.AppDailyLimit"}, "rejected", "LimitExceeded.AppDailyLimit"),
    ],
)
async def test_tencent_injected_faults(fault: dict[str, Any], outcome: str, code: str) -> None:
    async with asgi(fake_tencent.create_app(fake_tencent.DEFAULT_KEYS), TENCENT_BASE) as http:
        await inject(http, **fault)
        client = tencent(http)
        result = await client.send(tencent_msg())
        assert await recorded(http) == []
        after = await client.send(tencent_msg())
    assert (result.outcome, result.code) == (outcome, code)
    assert after.outcome == "sent"


async def test_tencent_read_timeout_is_ambiguous_and_the_sms_went_out() -> None:
    app = fake_tencent.create_app(fake_tencent.DEFAULT_KEYS)
    async with serve(app) as base_url, httpx.AsyncClient(base_url=base_url) as http:
        await inject(http, kind="delay", delay_s=1.0)
        result = await tencent(http, timeout_s=0.2).send(tencent_msg())
        sent = await recorded(http)
    assert (result.outcome, result.code) == ("ambiguous", "transport.ReadTimeout")
    assert [m["out_id"] for m in sent] == ["wo-1001:esc-2:sms"]


# --- Tencent fake, driven directly ---------------------------------------------------------------


def _tc3_headers(body: bytes, *, timestamp: int | None = None, action: str = "SendSms") -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    authorization = tc3_authorization(
        TENCENT_ID,
        TENCENT_KEY,
        service="sms",
        host="sms.tencentcloudapi.com",
        content_type="application/json",
        body=body,
        timestamp=ts,
    )
    return {
        "Content-Type": "application/json",
        "X-TC-Action": action,
        "X-TC-Version": "2021-01-11",
        "X-TC-Timestamp": str(ts),
        "X-TC-Region": "ap-guangzhou",
        "Authorization": authorization,
    }


def _tc3_body(phones: list[str]) -> bytes:
    payload = {
        "PhoneNumberSet": phones,
        "SmsSdkAppId": "1400006666",
        "SignName": "腾讯云",
        "TemplateId": "1110",
        "TemplateParamSet": ["A", "1"],
        "SessionContext": "ctx",
    }
    return json.dumps(payload).encode()  # the SDK's default separators and ASCII escapes


async def test_tencent_fake_mixes_per_number_results() -> None:
    body = _tc3_body([f"+86{PHONE}", "+86123", f"0086{PHONE[:-1]}9"])
    async with asgi(fake_tencent.create_app(fake_tencent.DEFAULT_KEYS), TENCENT_BASE) as http:
        reply = (await http.post("/", content=body, headers=_tc3_headers(body))).json()["Response"]
    assert reply["RequestId"]
    codes = [(s["PhoneNumber"], s["Code"]) for s in reply["SendStatusSet"]]
    assert codes == [
        (f"+86{PHONE}", "Ok"),
        ("+86123", "InvalidParameterValue.IncorrectPhoneNumber"),
        ("+8613800138009", "Ok"),
    ]
    assert reply["SendStatusSet"][1] == {
        "SerialNo": "",
        "PhoneNumber": "+86123",
        "Fee": 0,
        "SessionContext": "",
        "Code": "InvalidParameterValue.IncorrectPhoneNumber",
        "Message": "incorrect phone number format.",
        "IsoCode": "",
    }


async def test_tencent_fake_signature_checks() -> None:
    body = _tc3_body([f"+86{PHONE}"])
    headers = _tc3_headers(body)
    # Credential date must be the UTC date of X-TC-Timestamp.
    wrong_date = dict(headers, Authorization=re.sub(r"/\d{4}-\d{2}-\d{2}/", "/2000-01-01/", headers["Authorization"]))
    async with asgi(fake_tencent.create_app(fake_tencent.DEFAULT_KEYS), TENCENT_BASE) as http:
        tampered = await http.post("/", content=body.replace(b"ctx", b"xyz"), headers=headers)
        dated = await http.post("/", content=body, headers=wrong_date)
        garbled = await http.post("/", content=body, headers=dict(headers, Authorization="Bearer x"))
        action = await http.post("/", content=body, headers=_tc3_headers(body, action="SendSmsX"))
        assert await recorded(http) == []

    def code(response: httpx.Response) -> str:
        assert response.status_code == 200
        result: str = response.json()["Response"]["Error"]["Code"]
        return result

    assert code(tampered) == code(dated) == "AuthFailure.SignatureFailure"
    assert code(garbled) == "AuthFailure.InvalidAuthorization"
    assert code(action) == "InvalidAction"


# --- CLI -----------------------------------------------------------------------------------------


def test_cli_builds_configured_fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    app, args = fakes_cli.build(
        ["aliyun-sms", "--port", "18001", "--key", "k1:s:1", "--template", "SMS_1:a,b", "--per-minute", "1"]
    )
    fake = app.state.fake
    assert (args.host, args.port) == ("127.0.0.1", 18001)
    assert fake.keys == {"k1": "s:1"}
    assert fake.templates == {"SMS_1": ("a", "b")}
    assert fake.flow_limits == fake_aliyun.FlowLimits(per_minute=1)
    assert fake.sign_names == frozenset(fake_aliyun.DEFAULT_SIGN_NAMES)

    monkeypatch.setenv("GRIDLINE_FAKE_TENCENT_SMS_KEYS", "AKID1:key1,AKID2:key2")
    monkeypatch.setenv("GRIDLINE_FAKE_TENCENT_SMS_TEMPLATES", "1:1;2")
    app, _ = fakes_cli.build(["tencent-sms", "--port", "18002", "--sdk-app-id", "1400000001", "--per-day", "3"])
    fake = app.state.fake
    assert fake.keys == {"AKID1": "key1", "AKID2": "key2"}
    assert fake.templates == {"1": 1, "2": 0}
    assert fake.sdk_app_ids == frozenset({"1400000001"})
    assert fake.flow_limits == fake_tencent.FlowLimits(per_day=3)


# --- settling a doubtful send: the query APIs ---------------------------------------------------


@pytest.mark.parametrize("version", ["v3", "v2"])
async def test_aliyun_query_send_details_finds_a_send_by_out_id(version: str) -> None:
    app = fake_aliyun.create_app(fake_aliyun.DEFAULT_KEYS)
    async with asgi(app, "https://dysmsapi.aliyuncs.com") as http:
        client = aliyun(http, signature_version=version)
        before = time.time() - 5
        assert (await client.send(aliyun_msg(out_id="a-1"))).outcome == "sent"
        found = await client.lookup(PHONE, "a-1", before)
        assert (found.state, found.code) == ("sent", "DELIVERED")
        assert (await client.lookup(PHONE, "a-2", before)).state == "not_found"
        assert (await client.lookup("13900000000", "a-1", before)).state == "not_found"
        raw = (await http.get("/_fake/messages")).json()
        assert len(raw) == 1  # looking up sends nothing


async def test_aliyun_lookup_failure_is_unknown_never_not_found() -> None:
    app = fake_aliyun.create_app({"testId": "otherSecret"})  # every call fails its signature
    async with asgi(app, "https://dysmsapi.aliyuncs.com") as http:
        found = await aliyun(http).lookup(PHONE, "a-1", time.time())
    assert (found.state, found.code) == ("unknown", "SignatureDoesNotMatch")


async def test_aliyun_stall_fault_sends_nothing_and_times_out() -> None:
    app = fake_aliyun.create_app(fake_aliyun.DEFAULT_KEYS)
    async with serve(app) as url, asgi(app, url) as control:
        await inject(control, kind="stall", delay_s=1.0)
        async with httpx.AsyncClient(base_url=url) as http:
            client = aliyun(http, timeout_s=0.3)
            result = await client.send(aliyun_msg(out_id="s-1"))
            assert (result.outcome, result.code) == ("ambiguous", "transport.ReadTimeout")
            assert (await client.lookup(PHONE, "s-1", time.time() - 5)).state == "not_found"


async def test_tencent_pull_by_phone_and_queue() -> None:
    app = fake_tencent.create_app(fake_tencent.DEFAULT_KEYS)
    async with asgi(app, "https://sms.tencentcloudapi.com") as http:
        client = tencent(http)
        before = time.time() - 5
        sent = await client.send(tencent_msg(out_id="t-1"))
        assert sent.outcome == "sent"
        found = await client.lookup(PHONE, "t-1", before)
        assert (found.state, found.provider_message_id) == ("sent", sent.provider_message_id)
        assert (await client.lookup(PHONE, "t-2", before)).state == "not_found"
        queue = await client.pull_reports()
        assert queue is not None and [r["SessionContext"] for r in queue] == ["t-1"]
        assert await client.pull_reports() == []  # each report is handed out once


async def test_tencent_faults_do_not_hit_queries() -> None:
    app = fake_tencent.create_app(fake_tencent.DEFAULT_KEYS)
    async with asgi(app, "https://sms.tencentcloudapi.com") as http:
        client = tencent(http)
        await inject(http, kind="server_error")
        assert (await client.lookup(PHONE, "t-1", time.time())).state == "not_found"
        assert (await client.send(tencent_msg())).code == "http.502"  # the fault waited for the send
