"""Fake Tencent Cloud SMS 2021-01-11 `SendSms` for tests and local runs (reference §2, §7).

What it checks, answering like Tencent (HTTP 200, `{"Response":{"Error":{Code,Message},RequestId}}`
for request-level errors, per-number `SendStatusSet[i].Code` otherwise):

* TC3-HMAC-SHA256, recomputed by this module's own code (it never imports notify's signer, so a
  bug shared by both cannot pass) over the raw body bytes and the header's own `SignedHeaders`,
  which must include content-type and host. Malformed → `AuthFailure.InvalidAuthorization`;
  unknown SecretId → `AuthFailure.SecretIdNotFound`; `X-TC-Timestamp` more than 300 s off →
  `AuthFailure.SignatureExpire`; credential date ≠ UTC date of the timestamp, service ≠ `sms`, or
  mismatch → `AuthFailure.SignatureFailure`. TC3 carries no nonce, so none is checked.
* `X-TC-Action` → `InvalidAction`, `X-TC-Version` → `NoSuchVersion`, `X-TC-Region` →
  `MissingParameter` / `UnsupportedRegion`.
* Params: `SmsSdkAppId` known (`InvalidParameterValue.SdkAppIdNotExist`), ≤200 numbers
  (`LimitExceeded.PhoneNumberCountLimit`), approved `SignName`/`TemplateId`
  (`FailedOperation.SignatureIncorrectOrUnapproved` / `…TemplateIncorrectOrUnapproved`),
  `TemplateParamSet` strings (`InvalidParameterValue.TemplateParameterFormatError`), balance
  (`FailedOperation.InsufficientBalanceInSmsPackage`). Per number: format
  (`InvalidParameterValue.IncorrectPhoneNumber`), parameter count
  (`FailedOperation.TemplateParamSetNotMatchApprovedTemplate`), and frequency (same content per 30 s,
  per hour, per Beijing natural day → `LimitExceeded.PhoneNumber{ThirtySecond,OneHour,Daily}Limit`),
  so one reply can mix `Ok` and failures.
* Success entries carry `SerialNo` (`5000:<28 digits>`), `Fee`, `SessionContext`, `Code: "Ok"`.
* Status reports (`PullSmsSendStatusSet[]` with `UserReceiveTime`, `SerialNo`, `ReportStatus`,
  `SessionContext`…): `PullSmsSendStatus` (`Limit` ≤100, a queue: each report once) and
  `PullSmsSendStatusByPhoneNumber` (`PhoneNumber`, `BeginTime` ≤7 days back, `EndTime`, `Offset`).

Test-only defaults, overridable by `create_app` args, CLI flags (repeatable) or environment:

* keys: ``AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE`` → ``Gu5t9xGARNpq86cd98joQYCN3EXAMPLE``;
  ``--key SECRET_ID:SECRET_KEY``; ``GRIDLINE_FAKE_TENCENT_SMS_KEYS="id:key,id2:key2"``.
* SDK app ids: ``1400006666``; ``--sdk-app-id ID``; ``GRIDLINE_FAKE_TENCENT_SMS_SDK_APP_IDS="a,b"``.
* sign names: ``某市12345``, ``腾讯云``; ``--sign-name NAME``; ``GRIDLINE_FAKE_TENCENT_SMS_SIGN_NAMES``.
* templates: ``1110`` with 2 parameters; ``--template ID[:N]``;
  ``GRIDLINE_FAKE_TENCENT_SMS_TEMPLATES="1110:2;1111:0"``.
* frequency: 1 same content per 30 s, no hourly cap, 10 per natural day;
  ``--per-30s-same-content N --per-hour N --per-day N``. Balance: unlimited; ``--balance N``.

Run: ``python -m gridline_fakes tencent-sms --port 18002 [--host 127.0.0.1]``.

Control endpoints (not Tencent's): ``GET /_fake/messages`` lists accepted sends (one per number,
``out_id`` is the SessionContext); ``POST /_fake/faults`` queues a fault for the next ``count``
requests (see `Fault`); ``GET``/``DELETE /_fake/faults``; ``POST /_fake/reset``.
Logs name the SessionContext and SerialNo, never the phone number.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

from fastapi import FastAPI, Request, Response
from pydantic import BaseModel, Field

from gridline_fakes.aliyun_sms import push_reports

logger = logging.getLogger(__name__)

DEFAULT_KEYS: dict[str, str] = {"AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE": "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"}
DEFAULT_SDK_APP_IDS: tuple[str, ...] = ("1400006666",)
DEFAULT_SIGN_NAMES: tuple[str, ...] = ("某市12345", "腾讯云")
DEFAULT_TEMPLATES: dict[str, int] = {"1110": 2}
DEFAULT_REGIONS: tuple[str, ...] = ("ap-beijing", "ap-guangzhou", "ap-nanjing")
MAX_SKEW_S = 300
ACTIONS = frozenset({"SendSms", "PullSmsSendStatus", "PullSmsSendStatusByPhoneNumber"})
API_VERSION = "2021-01-11"
_BEIJING = timezone(timedelta(hours=8))
_PHONE = re.compile(r"^(?:\+86|0086|86)?(1\d{10})$")
_TC3_AUTH = re.compile(
    r"^TC3-HMAC-SHA256\s+Credential=(?P<id>[^/\s]+)/(?P<date>[^/]+)/(?P<service>[^/]+)/(?P<term>[^,\s]+),"
    r"\s*SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<sig>[0-9a-fA-F]+)$"
)


@dataclass(frozen=True)
class FlowLimits:
    """Tencent's default frequency policy (§2.5); None = unlimited."""

    per_30s_same_content: int | None = 1
    per_hour: int | None = None
    per_day: int | None = 10


class Fault(BaseModel):
    """Injected behaviour for the next `count` SendSms requests.

    * server_error: HTTP `status` (502), nothing sent (the SDK treats any non-200 as a network error).
    * throttling: request-level `RequestLimitExceeded` (or `code`), HTTP 200, nothing sent.
    * error: request-level `code` (`InternalError.Timeout`) / `message`, HTTP 200, nothing sent.
    * delay: process the request normally (recording an accepted send), then wait `delay_s` before
      answering, so a client with a shorter read timeout sees an ambiguous failure for an SMS that
      did go out.
    * stall: wait `delay_s` without sending, then answer 504: a client timing out first cannot know
      that nothing went out until it pulls the status reports.
    """

    kind: Literal["server_error", "throttling", "error", "delay", "stall"]
    count: int = Field(default=1, ge=1)
    status: int | None = None
    delay_s: float = Field(default=0.0, ge=0)
    code: str | None = None
    message: str | None = None


class TencentError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(code)
        self.code = code
        self.message = message


# --- independent signature verification ----------------------------------------------------------


def _hmac256(key: bytes, text: str) -> bytes:
    return hmac.digest(key, text.encode("utf-8"), "sha256")


def tc3_signature(
    secret_key: str,
    *,
    method: str,
    query: str,
    headers: Mapping[str, str],
    signed: Iterable[str],
    body: bytes,
    timestamp: int,
    date: str,
    service: str,
) -> str:
    """`headers` keyed by lower-case name; `signed` as listed in the Authorization header."""
    names = sorted(name.lower() for name in signed)
    canonical_headers = "".join(f"{name}:{headers.get(name, '').strip().lower()}\n" for name in names)
    payload = hashlib.sha256(b"" if method.upper() == "GET" else body).hexdigest()
    canonical = f"{method.upper()}\n/\n{query}\n{canonical_headers}\n{';'.join(names)}\n{payload}"
    scope = f"{date}/{service}/tc3_request"
    to_sign = f"TC3-HMAC-SHA256\n{timestamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = ("TC3" + secret_key).encode("utf-8")
    for part in (date, service, "tc3_request"):
        key = _hmac256(key, part)
    return _hmac256(key, to_sign).hex()


# --- the fake ------------------------------------------------------------------------------------

_SIGNATURE_FAILURE = TencentError(
    "AuthFailure.SignatureFailure",
    "The provided credentials could not be validated. Please check your signature is correct.",
)
_LIMIT_MESSAGES = {
    "LimitExceeded.PhoneNumberThirtySecondLimit": "sms sent to this number within 30 seconds exceeds the limit",
    "LimitExceeded.PhoneNumberOneHourLimit": "sms sent to this number within 1 hour exceeds the limit",
    "LimitExceeded.PhoneNumberDailyLimit": "sms sent to this number today exceeds the limit",
}


@dataclass
class TencentSmsFake:
    keys: Mapping[str, str]
    sdk_app_ids: frozenset[str]
    sign_names: frozenset[str]
    templates: Mapping[str, int]
    regions: frozenset[str]
    flow_limits: FlowLimits
    balance: int | None
    clock: Callable[[], float]
    messages: list[dict[str, Any]] = field(default_factory=list)
    faults: deque[Fault] = field(default_factory=deque)
    # phone → [(sent_at, content key)]
    sends: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    # Status reports: every one stays queryable by number; the pull queue hands each out once.
    reports: list[dict[str, Any]] = field(default_factory=list)
    report_queue: deque[dict[str, Any]] = field(default_factory=deque)

    def reset(self) -> None:
        self.messages.clear()
        self.faults.clear()
        self.sends.clear()
        self.reports.clear()
        self.report_queue.clear()

    def verify(self, request: Request, body: bytes) -> str:
        headers = {name.lower(): value for name, value in request.headers.items()}
        match = _TC3_AUTH.match(headers.get("authorization", "").strip())
        if match is None:
            raise TencentError("AuthFailure.InvalidAuthorization", "Authorization header format error.")
        raw_timestamp = headers.get("x-tc-timestamp", "")
        if not raw_timestamp.isdigit():
            raise TencentError("MissingParameter", "The request is missing a required parameter `Timestamp`.")
        timestamp = int(raw_timestamp)
        if abs(self.clock() - timestamp) > MAX_SKEW_S:
            raise TencentError(
                "AuthFailure.SignatureExpire",
                "Signature expired. Timestamp comparison failed: request time differs from server time "
                "by more than 300 seconds.",
            )
        secret_key = self.keys.get(match["id"])
        if secret_key is None:
            raise TencentError("AuthFailure.SecretIdNotFound", "The SecretId is not found.")
        signed = match["signed"].lower().split(";")
        utc_date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
        if (
            match["date"] != utc_date
            or match["service"] != "sms"
            or match["term"] != "tc3_request"
            or not {"content-type", "host"} <= set(signed)
            or not all(name in headers for name in signed)
        ):
            raise _SIGNATURE_FAILURE
        expected = tc3_signature(
            secret_key,
            method=request.method,
            query=request.url.query,
            headers=headers,
            signed=signed,
            body=body,
            timestamp=timestamp,
            date=utc_date,
            service="sms",
        )
        if not hmac.compare_digest(expected, match["sig"].lower()):
            raise _SIGNATURE_FAILURE
        action, version, region = (headers.get(f"x-tc-{h}", "") for h in ("action", "version", "region"))
        if action not in ACTIONS:
            raise TencentError("InvalidAction", f"The requested action `{action}` does not exist.")
        if version != API_VERSION:
            raise TencentError("NoSuchVersion", f"The requested version `{version}` of `{action}` does not exist.")
        if not region:
            raise TencentError("MissingParameter", "The request is missing a required parameter `Region`.")
        if region not in self.regions:
            raise TencentError("UnsupportedRegion", f"The region `{region}` is not supported.")
        return action

    def accept(self, body: bytes) -> list[dict[str, Any]]:
        try:
            params = json.loads(body)
        except ValueError:
            raise TencentError("InvalidParameter", "The request body is not valid JSON.") from None
        if not isinstance(params, dict):
            raise TencentError("InvalidParameter", "The request body must be a JSON object.")
        for name in ("PhoneNumberSet", "SmsSdkAppId", "TemplateId", "SignName"):
            if not params.get(name):
                raise TencentError("MissingParameter", f"The request is missing a required parameter `{name}`.")
        phones = params["PhoneNumberSet"]
        if not isinstance(phones, list) or not all(isinstance(p, str) for p in phones):
            raise TencentError("InvalidParameter", "`PhoneNumberSet` must be an array of strings.")
        if params["SmsSdkAppId"] not in self.sdk_app_ids:
            raise TencentError("InvalidParameterValue.SdkAppIdNotExist", "SdkAppId does not exist.")
        if len(phones) > 200:
            raise TencentError("LimitExceeded.PhoneNumberCountLimit", "the number of phone numbers exceeds 200.")
        sign, template = params["SignName"], str(params["TemplateId"])
        if sign not in self.sign_names:
            raise TencentError("FailedOperation.SignatureIncorrectOrUnapproved", "signature not approved or not exist")
        if template not in self.templates:
            raise TencentError("FailedOperation.TemplateIncorrectOrUnapproved", "template not approved or not exist")
        values = params.get("TemplateParamSet", [])
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise TencentError(
                "InvalidParameterValue.TemplateParameterFormatError", "template parameters must be strings."
            )
        if self.balance is not None and self.balance < len(phones):
            raise TencentError("FailedOperation.InsufficientBalanceInSmsPackage", "insufficient sms package balance")
        context = str(params.get("SessionContext", ""))
        content = json.dumps([sign, template, values], ensure_ascii=False)
        return [self._one(phone, sign, template, values, content, context) for phone in phones]

    def _one(self, raw: str, sign: str, template: str, values: list[str], content: str, context: str) -> dict[str, Any]:
        match = _PHONE.match(raw)
        if match is None:
            return _failed(raw, "InvalidParameterValue.IncorrectPhoneNumber", "incorrect phone number format.")
        phone = f"+86{match[1]}"
        if len(values) != self.templates[template]:
            return _failed(
                phone,
                "FailedOperation.TemplateParamSetNotMatchApprovedTemplate",
                "request content does not match the template content",
            )
        now = self.clock()
        limited = self._limited(phone, content, now)
        if limited is not None:
            return _failed(phone, limited, _LIMIT_MESSAGES[limited])
        serial_no = f"5000:{secrets.randbelow(10**28):028d}"
        self.sends.setdefault(phone, []).append((now, content))
        if self.balance is not None:
            self.balance -= 1
        self.messages.append(
            {
                "provider": "tencent",
                "phone": phone,
                "sign_name": sign,
                "template": template,
                "params": values,
                "out_id": context,
                "provider_id": serial_no,
                "received_at": datetime.fromtimestamp(now, UTC).isoformat(),
            }
        )
        # The carrier's report arrives at once here; real ones lag by seconds to minutes.
        report = {
            "UserReceiveTime": int(now),
            "CountryCode": "86",
            "SubscriberNumber": match[1],
            "PhoneNumber": phone,
            "SerialNo": serial_no,
            "ReportStatus": "SUCCESS",
            "Description": "用户短信送达成功",
            "SessionContext": context,
        }
        self.reports.append(report)
        self.report_queue.append(report)
        logger.info("accepted SendSms session_context=%s serial_no=%s", context, serial_no)
        return {
            "SerialNo": serial_no,
            "PhoneNumber": phone,
            "Fee": 1,
            "SessionContext": context,
            "Code": "Ok",
            "Message": "send success",
            "IsoCode": "CN",
        }

    def pull(self, action: str, body: bytes) -> dict[str, Any]:
        """`PullSmsSendStatus` (queue, each report once) or `…ByPhoneNumber` (one number, a time range)."""
        try:
            params = json.loads(body)
        except ValueError:
            raise TencentError("InvalidParameter", "The request body is not valid JSON.") from None
        if not isinstance(params, dict):
            raise TencentError("InvalidParameter", "The request body must be a JSON object.")
        if params.get("SmsSdkAppId") not in self.sdk_app_ids:
            raise TencentError("InvalidParameterValue.SdkAppIdNotExist", "SdkAppId does not exist.")
        limit = params.get("Limit")
        if not isinstance(limit, int) or not 0 < limit <= 100:
            raise TencentError("InvalidParameterValue", "`Limit` must be between 1 and 100.")
        if action == "PullSmsSendStatus":
            out = [self.report_queue.popleft() for _ in range(min(limit, len(self.report_queue)))]
            return {"PullSmsSendStatusSet": out}
        for name in ("BeginTime", "Offset", "PhoneNumber"):
            if name not in params:
                raise TencentError("MissingParameter", f"The request is missing a required parameter `{name}`.")
        begin, end, offset = params["BeginTime"], params.get("EndTime"), params["Offset"]
        if not all(isinstance(v, int) for v in (begin, offset)) or not isinstance(end, (int, type(None))):
            raise TencentError("InvalidParameter", "`BeginTime`, `EndTime` and `Offset` must be integers.")
        if self.clock() - begin > 7 * 86400:
            raise TencentError("InvalidParameterValue", "`BeginTime` must be within the last 7 days.")
        match = _PHONE.match(str(params["PhoneNumber"]))
        if match is None:
            raise TencentError("InvalidParameterValue.IncorrectPhoneNumber", "incorrect phone number format.")
        found = [
            r
            for r in self.reports
            if r["SubscriberNumber"] == match[1]
            and r["UserReceiveTime"] >= begin
            and (end is None or r["UserReceiveTime"] <= end)
        ]
        return {"PullSmsSendStatusSet": found[offset : offset + limit]}

    def _limited(self, phone: str, content: str, now: float) -> str | None:
        history = [(t, c) for t, c in self.sends.get(phone, []) if now - t < 86400]
        self.sends[phone] = history
        limits = self.flow_limits
        today = datetime.fromtimestamp(now, _BEIJING).date()
        checks = (
            (limits.per_30s_same_content, [t for t, c in history if c == content and now - t < 30], "ThirtySecond"),
            (limits.per_hour, [t for t, _ in history if now - t < 3600], "OneHour"),
            (limits.per_day, [t for t, _ in history if datetime.fromtimestamp(t, _BEIJING).date() == today], "Daily"),
        )
        for limit, hits, name in checks:
            if limit is not None and len(hits) >= limit:
                return f"LimitExceeded.PhoneNumber{name}Limit"
        return None


def _serials(results: list[dict[str, Any]]) -> set[str]:
    return {r["SerialNo"] for r in results if r["Code"] == "Ok"}


def _callback(report: dict[str, Any]) -> dict[str, Any]:
    """A status report in the callback format (reference §2.6), not the pull format."""
    return {
        "user_receive_time": datetime.fromtimestamp(report["UserReceiveTime"], _BEIJING).strftime("%Y-%m-%d %H:%M:%S"),
        "nationcode": report["CountryCode"],
        "mobile": report["SubscriberNumber"],
        "report_status": report["ReportStatus"],
        "errmsg": "DELIVRD",
        "description": report["Description"],
        "sid": report["SerialNo"],
    }


def _failed(phone: str, code: str, message: str) -> dict[str, Any]:
    return {
        "SerialNo": "",
        "PhoneNumber": phone,
        "Fee": 0,
        "SessionContext": "",
        "Code": code,
        "Message": message,
        "IsoCode": "",
    }


def _reply(response: dict[str, Any], status: int = 200) -> Response:
    response["RequestId"] = str(uuid.uuid4())
    content = json.dumps({"Response": response}, ensure_ascii=False, separators=(",", ":"))
    return Response(content, status_code=status, media_type="application/json")


def _fault_error(fault: Fault) -> TencentError:
    if fault.kind == "throttling":
        return TencentError(
            fault.code or "RequestLimitExceeded",
            fault.message or "Your current request times exceeds the limit, please try again later.",
        )
    return TencentError(fault.code or "InternalError.Timeout", fault.message or "Request timed out.")


def create_app(
    keys: dict[str, str],
    *,
    sdk_app_ids: Iterable[str] = DEFAULT_SDK_APP_IDS,
    sign_names: Iterable[str] = DEFAULT_SIGN_NAMES,
    templates: Mapping[str, int] | None = None,
    regions: Iterable[str] = DEFAULT_REGIONS,
    flow_limits: FlowLimits | None = None,
    balance: int | None = None,
    clock: Callable[[], float] = time.time,
    report_url: str | None = None,
) -> FastAPI:
    """`keys` maps SecretId → SecretKey; `templates` maps an approved TemplateId to its parameter count.

    With `report_url`, every accepted send is followed by a status callback push (JSON array).
    """
    fake = TencentSmsFake(
        keys=dict(keys),
        sdk_app_ids=frozenset(sdk_app_ids),
        sign_names=frozenset(sign_names),
        templates=dict(templates if templates is not None else DEFAULT_TEMPLATES),
        regions=frozenset(regions),
        flow_limits=flow_limits or FlowLimits(),
        balance=balance,
        clock=clock,
    )
    app = FastAPI(title="fake Tencent Cloud SMS", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.fake = fake

    @app.post("/")
    async def api(request: Request) -> Response:
        body = await request.body()
        fault = fake.faults.popleft() if fake.faults else None
        if fault is not None and fault.kind == "server_error" and request.headers.get("x-tc-action") == "SendSms":
            logger.info("injected HTTP %s", fault.status or 502)
            return Response("Bad Gateway", status_code=fault.status or 502, media_type="text/plain")
        try:
            if request.headers.get("x-tc-action", "").startswith("Pull"):
                if fault is not None:  # faults target sends only; put it back for the next one
                    fake.faults.appendleft(fault)
                    fault = None
                return _reply(fake.pull(fake.verify(request, body), body))
            if fault is not None and fault.kind == "stall":
                await asyncio.sleep(fault.delay_s)
                return Response("Gateway Timeout", status_code=504, media_type="text/plain")
            if fault is not None and fault.kind != "delay":
                raise _fault_error(fault)
            fake.verify(request, body)
            results = fake.accept(body)
            if report_url:
                push_reports(report_url, [_callback(r) for r in fake.reports if r["SerialNo"] in _serials(results)])
            response = _reply({"SendStatusSet": results})
        except TencentError as err:
            logger.info("rejected %s code=%s", request.headers.get("x-tc-action"), err.code)
            response = _reply({"Error": {"Code": err.code, "Message": err.message}})
        if fault is not None:  # only a delay fault gets here: the outcome is already decided
            await asyncio.sleep(fault.delay_s)
        return response

    @app.get("/_fake/messages")
    async def messages() -> list[dict[str, Any]]:
        return fake.messages

    @app.get("/_fake/faults")
    async def pending_faults() -> list[Fault]:
        return list(fake.faults)

    @app.post("/_fake/faults")
    async def add_fault(fault: Fault) -> list[Fault]:
        fake.faults.extend([fault] * fault.count)
        return list(fake.faults)

    @app.delete("/_fake/faults")
    async def clear_faults() -> list[Fault]:
        fake.faults.clear()
        return []

    @app.post("/_fake/reset")
    async def reset() -> dict[str, bool]:
        fake.reset()
        return {"ok": True}

    return app
