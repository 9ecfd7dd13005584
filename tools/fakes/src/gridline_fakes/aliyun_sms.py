"""Fake Aliyun Dysmsapi 2017-05-25 `SendSms` for tests and local runs (reference §1, §7).

What it checks, with the codes and HTTP statuses Aliyun answers:

* V2 (`Signature` in query or form body, GET or POST, HMAC-SHA1) and V3 (`Authorization:
  ACS3-HMAC-SHA256`, recomputed over the header's own `SignedHeaders`, which must include host and the
  five `x-acs-*` headers; `x-acs-content-sha256` must hash the raw body). The signatures are
  recomputed by this module's own code, which never imports notify's signer, so a bug shared by
  both cannot pass. Unknown key → 404 `InvalidAccessKeyId.NotFound`; mismatch → 400
  `SignatureDoesNotMatch` (echoing the server string-to-sign, as Aliyun does, so clients must scrub
  it); malformed → 400 `IncompleteSignature`; `Timestamp`/`x-acs-date` outside the window → 400
  `InvalidTimeStamp.Expired`; a nonce seen within the window → 400 `SignatureNonceUsed`.
* Params, answered with HTTP 200 and `isv.*`: phone format and count (≤1000), approved sign names,
  approved templates and their variables, `TemplateParam` a JSON object of strings, balance, and
  per-(sign, template, phone) flow control → `isv.BUSINESS_LIMIT_CONTROL` `触发分钟级流控Permits:N`.
* Success → `{"Code":"OK","Message":"OK","BizId":"<18 digits>^0","RequestId":…}`; V2 `Format=XML`
  (the V2 default) is answered in XML.
* `QuerySendDetails` (same signatures): `PhoneNumber`, `SendDate` (yyyyMMdd, Beijing, ≤30 days back),
  `PageSize` 1–50, `CurrentPage`, optional `BizId` → `TotalCount` and
  `SmsSendDetailDTOs.SmsSendDetailDTO[]` with `OutId`, `SendStatus` (3 = 发送成功), `ErrCode`, dates.
  This is how a client settles a timed-out send before ever sending again.

Test-only defaults, overridable by `create_app` args, CLI flags (repeatable) or environment:

* keys: ``testId`` → ``testSecret``; ``--key ID:SECRET``;
  ``GRIDLINE_FAKE_ALIYUN_SMS_KEYS="id:secret,id2:secret2"``.
* sign names: ``某市12345``; ``--sign-name NAME``; ``GRIDLINE_FAKE_ALIYUN_SMS_SIGN_NAMES="a,b"``.
* templates: ``SMS_123456789`` with variables ``order, hours``; ``--template CODE[:var1,var2]``;
  ``GRIDLINE_FAKE_ALIYUN_SMS_TEMPLATES="SMS_1:order,hours;SMS_2"``.
* flow limits per (sign, template, phone): 50/day; ``--per-minute N --per-hour N --per-day N``.
* balance: unlimited; ``--balance N``.

Run: ``python -m gridline_fakes aliyun-sms --port 18001 [--host 127.0.0.1]``.

Control endpoints (not Aliyun's): ``GET /_fake/messages`` lists accepted sends (one entry per
phone); ``POST /_fake/faults`` queues a fault for the next ``count`` requests (see `Fault`);
``GET``/``DELETE /_fake/faults``; ``POST /_fake/reset`` clears messages, counters, nonces and faults.
Logs name the out id and BizId, never the phone number; run uvicorn without access logs because V3
puts the phone in the query string.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
import urllib.parse
import urllib.request
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal
from xml.sax.saxutils import escape

from fastapi import FastAPI, Request, Response
from pydantic import BaseModel, Field

logger = logging.getLogger(__name__)

DEFAULT_KEYS: dict[str, str] = {"testId": "testSecret"}
DEFAULT_SIGN_NAMES: tuple[str, ...] = ("某市12345",)
DEFAULT_TEMPLATES: dict[str, tuple[str, ...]] = {"SMS_123456789": ("order", "hours")}
# Reference §1.2: a V2 Timestamp is valid for 31 minutes; the same window bounds nonce memory.
DEFAULT_TIMESTAMP_WINDOW_S = 31 * 60
HOST_ID = "dysmsapi.aliyuncs.com"
API_VERSION = "2017-05-25"
V3_REQUIRED_HEADERS = frozenset(
    {"host", "x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256"}
)
_PHONE = re.compile(r"^(?:\+86|0086|86|\+)?(1\d{10})$")
_V3_AUTH = re.compile(
    r"^ACS3-HMAC-SHA256\s+Credential=(?P<key>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),"
    r"\s*Signature=(?P<sig>[0-9a-fA-F]+)$"
)


@dataclass(frozen=True)
class FlowLimits:
    """Per (sign, template, phone) sends allowed in a rolling window; None = unlimited.

    Defaults are Aliyun's for notification templates (§1.7: 50/day); verification-code accounts
    use per_minute=1, per_hour=5, per_day=10.
    """

    per_minute: int | None = None
    per_hour: int | None = None
    per_day: int | None = 50

    def windows(self) -> tuple[tuple[float, int | None, str], ...]:
        return ((60.0, self.per_minute, "分钟级"), (3600.0, self.per_hour, "小时级"), (86400.0, self.per_day, "天级"))


class Fault(BaseModel):
    """Injected behaviour for the next `count` SendSms requests.

    * server_error: HTTP `status` (503) `ServiceUnavailable`; nothing is sent.
    * throttling: HTTP `status` (400) `Throttling.User`, header `x-acs-retry-after: retry_after_s`.
    * error: answer `code` (`isp.SYSTEM_ERROR`) / `message` with HTTP `status` (200); nothing sent.
    * delay: process the request normally (recording an accepted send), then wait `delay_s` before
      answering, so a client with a shorter read timeout sees an ambiguous failure for an SMS that
      did go out.
    * stall: wait `delay_s` without sending, then answer 503: a client timing out first cannot know
      that nothing went out until it asks `QuerySendDetails`.
    """

    kind: Literal["server_error", "throttling", "error", "delay", "stall"]
    count: int = Field(default=1, ge=1)
    status: int | None = None
    delay_s: float = Field(default=0.0, ge=0)
    retry_after_s: float | None = None
    code: str | None = None
    message: str | None = None


class AliyunError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


# --- independent signature verification ----------------------------------------------------------

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def rfc3986(text: str) -> str:
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in text.encode("utf-8"))


def _canonical_pairs(pairs: Iterable[tuple[str, str]]) -> str:
    return "&".join("=".join(pair) for pair in sorted((rfc3986(k), rfc3986(v)) for k, v in pairs))


def v2_string_to_sign(method: str, pairs: Iterable[tuple[str, str]]) -> str:
    query = _canonical_pairs((k, v) for k, v in pairs if k != "Signature")
    return "&".join([method.upper(), rfc3986("/"), rfc3986(query)])


def v2_signature(method: str, pairs: Iterable[tuple[str, str]], secret: str) -> str:
    digest = hmac.digest((secret + "&").encode(), v2_string_to_sign(method, pairs).encode(), "sha1")
    return base64.b64encode(digest).decode()


def v3_signature(
    method: str,
    path: str,
    query_pairs: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    signed: Iterable[str],
    payload_sha256: str,
    secret: str,
) -> str:
    """`headers` keyed by lower-case name; `signed` as listed in the Authorization header."""
    names = sorted(name.lower() for name in signed)
    lines = [
        method.upper(),
        path,
        _canonical_pairs(query_pairs),
        "".join(f"{name}:{headers.get(name, '').strip()}\n" for name in names),
        ";".join(names),
        payload_sha256,
    ]
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    return hmac.digest(secret.encode(), f"ACS3-HMAC-SHA256\n{digest}".encode(), "sha256").hex()


# --- the fake ------------------------------------------------------------------------------------


def _form_pairs(request: Request, body: bytes) -> list[tuple[str, str]]:
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    return []


def _incomplete_signature() -> AliyunError:
    return AliyunError(400, "IncompleteSignature", "The request signature does not conform to Aliyun standards.")


ACTIONS = frozenset({"SendSms", "QuerySendDetails"})
_BEIJING = timezone(timedelta(hours=8))


def _check_api(action: str | None, version: str | None) -> None:
    if action not in ACTIONS:
        raise AliyunError(
            404, "InvalidAction.NotFound", "Specified api is not found, please check your url and method."
        )
    if version != API_VERSION:
        raise AliyunError(400, "InvalidVersion", "Specified parameter Version is not valid.")


def _parse_time(value: str) -> float:
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise AliyunError(
            400, "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted."
        ) from None


@dataclass
class AliyunSmsFake:
    keys: Mapping[str, str]
    sign_names: frozenset[str]
    templates: Mapping[str, tuple[str, ...]]
    flow_limits: FlowLimits
    balance: int | None
    timestamp_window_s: float
    clock: Callable[[], float]
    messages: list[dict[str, Any]] = field(default_factory=list)
    faults: deque[Fault] = field(default_factory=deque)
    nonces: dict[str, float] = field(default_factory=dict)
    nonce_order: deque[tuple[float, str]] = field(default_factory=deque)
    sends: dict[tuple[str, str, str], list[float]] = field(default_factory=dict)

    def reset(self) -> None:
        self.messages.clear()
        self.faults.clear()
        self.nonces.clear()
        self.nonce_order.clear()
        self.sends.clear()

    # auth

    def _secret(self, key_id: str) -> str:
        secret = self.keys.get(key_id)
        if secret is None:
            raise AliyunError(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        return secret

    def _check_fresh(self, at: float) -> None:
        if abs(self.clock() - at) > self.timestamp_window_s:
            raise AliyunError(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")

    def _use_nonce(self, nonce: str) -> None:
        now = self.clock()
        # Expire in arrival order: O(1) per request however many nonces the window holds.
        while self.nonce_order and now - self.nonce_order[0][0] > self.timestamp_window_s:
            _, old = self.nonce_order.popleft()
            self.nonces.pop(old, None)
        if nonce in self.nonces:
            raise AliyunError(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
        self.nonces[nonce] = now
        self.nonce_order.append((now, nonce))

    @staticmethod
    def _mismatch(string_to_sign: str) -> AliyunError:
        # Aliyun echoes its string-to-sign; kept so client-side scrubbing is exercised.
        return AliyunError(
            400,
            "SignatureDoesNotMatch",
            f"Specified signature is not matched with our calculation. server string to sign is:{string_to_sign}",
        )

    def verify_v2(self, method: str, pairs: list[tuple[str, str]]) -> dict[str, str]:
        params = dict(pairs)
        for name in ("AccessKeyId", "SignatureNonce", "Timestamp", "Signature"):
            if not params.get(name):
                raise AliyunError(400, f"Missing{name}", f"{name} is mandatory for this action.")
        if params.get("SignatureMethod") != "HMAC-SHA1" or params.get("SignatureVersion") != "1.0":
            raise _incomplete_signature()
        secret = self._secret(params["AccessKeyId"])
        self._check_fresh(_parse_time(params["Timestamp"]))
        if not hmac.compare_digest(v2_signature(method, pairs, secret), params["Signature"]):
            raise self._mismatch(v2_string_to_sign(method, pairs))
        self._use_nonce(params["SignatureNonce"])
        _check_api(params.get("Action"), params.get("Version"))
        return params

    def verify_v3(self, request: Request, authorization: str, body: bytes) -> str:
        match = _V3_AUTH.match(authorization.strip())
        if match is None:
            raise _incomplete_signature()
        signed = match["signed"].lower().split(";")
        headers = {name.lower(): value for name, value in request.headers.items()}
        if not set(signed) >= V3_REQUIRED_HEADERS or not all(name in headers for name in signed):
            raise _incomplete_signature()
        secret = self._secret(match["key"])
        self._check_fresh(_parse_time(headers["x-acs-date"]))
        payload_sha256 = hashlib.sha256(body).hexdigest()
        expected = v3_signature(
            request.method,
            request.url.path or "/",
            request.query_params.multi_items(),
            headers,
            signed,
            payload_sha256,
            secret,
        )
        if headers["x-acs-content-sha256"] != payload_sha256 or not hmac.compare_digest(expected, match["sig"].lower()):
            raise self._mismatch(f"ACS3-HMAC-SHA256 (signed headers {';'.join(sorted(signed))})")
        self._use_nonce(headers["x-acs-signature-nonce"])
        _check_api(headers["x-acs-action"], headers["x-acs-version"])
        return headers["x-acs-action"]

    # business

    def accept(self, params: Mapping[str, str], signature_version: str, key_id: str) -> str:
        for name in ("PhoneNumbers", "SignName", "TemplateCode"):
            if not params.get(name):
                raise AliyunError(400, f"Missing{name}", f"{name} is mandatory for this action.")
        raw_phones = params["PhoneNumbers"].split(",")
        if len(raw_phones) > 1000:
            raise AliyunError(200, "isv.MOBILE_COUNT_OVER_LIMIT", "手机号码数量超过限制")
        phones = []
        for raw in raw_phones:
            match = _PHONE.match(raw.strip())
            if match is None:
                raise AliyunError(200, "isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
            phones.append(match[1])
        sign, template = params["SignName"], params["TemplateCode"]
        if sign not in self.sign_names:
            raise AliyunError(200, "isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名")
        if template not in self.templates:
            raise AliyunError(200, "isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板")
        variables = _template_params(params.get("TemplateParam"), self.templates[template])
        if self.balance is not None and self.balance < len(phones):
            raise AliyunError(200, "isv.AMOUNT_NOT_ENOUGH", "账户余额不足")
        now = self.clock()
        for phone in phones:
            self._check_flow(sign, template, phone, now)
        biz_id = f"{secrets.randbelow(10**18):018d}^0"
        received_at = datetime.fromtimestamp(now, UTC).isoformat()
        for phone in phones:
            self.sends.setdefault((sign, template, phone), []).append(now)
            self.messages.append(
                {
                    "provider": "aliyun",
                    "phone": phone,
                    "sign_name": sign,
                    "template": template,
                    "params": variables,
                    "out_id": params.get("OutId"),
                    "provider_id": biz_id,
                    "received_at": received_at,
                    "at": now,
                    "access_key_id": key_id,
                    "signature_version": signature_version,
                }
            )
        if self.balance is not None:
            self.balance -= len(phones)
        logger.info("accepted SendSms out_id=%s biz_id=%s numbers=%d", params.get("OutId"), biz_id, len(phones))
        return biz_id

    def query(self, params: Mapping[str, str]) -> dict[str, Any]:
        """`QuerySendDetails`: one number's sends on one Beijing date, newest first, paged (≤50)."""
        for name in ("PhoneNumber", "SendDate", "PageSize", "CurrentPage"):
            if not params.get(name):
                raise AliyunError(400, f"Missing{name}", f"{name} is mandatory for this action.")
        match = _PHONE.match(params["PhoneNumber"].strip())
        if match is None:
            raise AliyunError(200, "isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
        try:
            day = datetime.strptime(params["SendDate"], "%Y%m%d").date()
            size, page = int(params["PageSize"]), int(params["CurrentPage"])
        except ValueError:
            raise AliyunError(400, "InvalidParameter", "Specified parameter is not valid.") from None
        if not 1 <= size <= 50 or page < 1:
            raise AliyunError(400, "InvalidParameter", "Specified parameter PageSize or CurrentPage is not valid.")
        if (datetime.fromtimestamp(self.clock(), _BEIJING).date() - day).days > 30:
            raise AliyunError(200, "isv.DAY_LIMIT_CONTROL", "只支持查询近30天的记录")
        found = [
            m
            for m in reversed(self.messages)
            if m["phone"] == match[1]
            and datetime.fromtimestamp(m["at"], _BEIJING).date() == day
            and (not params.get("BizId") or m["provider_id"] == params["BizId"])
        ]
        dtos = [
            {
                "PhoneNum": m["phone"],
                "SendStatus": 3,  # 1 等待回执, 2 发送失败, 3 发送成功
                "ErrCode": "DELIVERED",
                "TemplateCode": m["template"],
                "Content": f"【{m['sign_name']}】{json.dumps(m['params'], ensure_ascii=False)}",
                "SendDate": _beijing(m["at"]),
                "ReceiveDate": _beijing(m["at"]),
                "OutId": m["out_id"] or "",
            }
            for m in found[(page - 1) * size : page * size]
        ]
        return {"TotalCount": len(found), "SmsSendDetailDTOs": {"SmsSendDetailDTO": dtos}}

    def _check_flow(self, sign: str, template: str, phone: str, now: float) -> None:
        history = [t for t in self.sends.get((sign, template, phone), []) if now - t < 86400]
        self.sends[(sign, template, phone)] = history
        for window, limit, label in self.flow_limits.windows():
            if limit is not None and sum(1 for t in history if now - t < window) >= limit:
                raise AliyunError(200, "isv.BUSINESS_LIMIT_CONTROL", f"触发{label}流控Permits:{limit}")


def _sms_report(m: dict[str, Any]) -> dict[str, Any]:
    return {
        "phone_number": m["phone"],
        "send_time": _beijing(m["at"]),
        "report_time": _beijing(m["at"]),
        "success": True,
        "err_code": "DELIVERED",
        "err_msg": "用户接收成功",
        "sms_size": "1",
        "biz_id": m["provider_id"],
        "out_id": m["out_id"] or "",
    }


def push_reports(url: str, reports: list[dict[str, Any]]) -> None:
    """POST a receipt array in the background, once (real providers re-push a few times on failure)."""

    def post() -> None:
        body = json.dumps(reports, ensure_ascii=False).encode()
        req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                logger.info("receipt push answered HTTP %s", r.status)
        except OSError as exc:
            logger.warning("receipt push failed: %s", type(exc).__name__)

    asyncio.get_running_loop().run_in_executor(None, post)


def _beijing(at: float) -> str:
    return datetime.fromtimestamp(at, _BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def _template_params(raw: str | None, variables: tuple[str, ...]) -> dict[str, str]:
    if not raw:
        if variables:
            raise AliyunError(200, "isv.TEMPLATE_MISSING_PARAMETERS", "模板缺少变量")
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict) or not all(isinstance(v, str) for v in parsed.values()):
        raise AliyunError(200, "isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值")
    if any(name not in parsed for name in variables):
        raise AliyunError(200, "isv.TEMPLATE_MISSING_PARAMETERS", "模板缺少变量")
    return parsed


def _render(payload: dict[str, Any], status: int, fmt: str, root: str, headers: Mapping[str, str]) -> Response:
    if fmt == "XML":
        inner = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in payload.items())
        xml = f'<?xml version="1.0" encoding="UTF-8"?><{root}>{inner}</{root}>'
        return Response(xml, status_code=status, media_type="application/xml", headers=dict(headers))
    content = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return Response(content, status_code=status, media_type="application/json", headers=dict(headers))


def _error_response(err: AliyunError, fmt: str) -> Response:
    request_id = str(uuid.uuid4()).upper()
    payload: dict[str, Any] = {"RequestId": request_id}
    if err.status >= 400:
        payload["HostId"] = HOST_ID
    payload |= {"Code": err.code, "Message": err.message}
    if err.status >= 400:
        payload["Recommend"] = (
            f"https://api.aliyun.com/troubleshoot?q={err.code}&product=Dysmsapi&requestId={request_id}"
        )
    logger.info("rejected SendSms status=%s code=%s", err.status, err.code)
    return _render(payload, err.status, fmt, "Error" if err.status >= 400 else "SendSmsResponse", err.headers)


def _fault_error(fault: Fault) -> AliyunError:
    if fault.kind in ("server_error", "stall"):
        return AliyunError(
            fault.status or 503,
            fault.code or "ServiceUnavailable",
            fault.message or "The request has failed due to a temporary failure of the server.",
        )
    if fault.kind == "throttling":
        headers = {"x-acs-retry-after": f"{fault.retry_after_s:g}"} if fault.retry_after_s is not None else {}
        return AliyunError(
            fault.status or 400,
            fault.code or "Throttling.User",
            fault.message or "Request was denied due to user flow control.",
            headers,
        )
    return AliyunError(fault.status or 200, fault.code or "isp.SYSTEM_ERROR", fault.message or "系统错误")


def create_app(
    keys: dict[str, str],
    *,
    sign_names: Iterable[str] = DEFAULT_SIGN_NAMES,
    templates: Mapping[str, Iterable[str]] | None = None,
    flow_limits: FlowLimits | None = None,
    balance: int | None = None,
    timestamp_window_s: float = DEFAULT_TIMESTAMP_WINDOW_S,
    clock: Callable[[], float] = time.time,
    report_url: str | None = None,
) -> FastAPI:
    """`templates` maps an approved TemplateCode to its variable names; `balance` None = unlimited.

    With `report_url`, every accepted send is followed by an `SmsReport` push (a JSON array, as
    Aliyun's HTTP receipt delivery does) reporting it DELIVERED.
    """
    fake = AliyunSmsFake(
        keys=dict(keys),
        sign_names=frozenset(sign_names),
        templates={code: tuple(v) for code, v in (templates or DEFAULT_TEMPLATES).items()},
        flow_limits=flow_limits or FlowLimits(),
        balance=balance,
        timestamp_window_s=timestamp_window_s,
        clock=clock,
    )
    app = FastAPI(title="fake Aliyun Dysmsapi", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.fake = fake

    @app.api_route("/", methods=["GET", "POST"])
    async def rpc(request: Request) -> Response:
        body = await request.body()
        authorization = request.headers.get("authorization", "")
        is_v3 = authorization.startswith("ACS3-")
        pairs = [*request.query_params.multi_items(), *_form_pairs(request, body)]
        fmt = "JSON" if is_v3 else dict(pairs).get("Format", "XML").upper()
        fault = fake.faults.popleft() if fake.faults else None
        try:
            if is_v3:
                action = fake.verify_v3(request, authorization, body)
                key_id = authorization.split("Credential=", 1)[1].split(",", 1)[0]
                params = dict(pairs)
            else:
                params = fake.verify_v2(request.method, pairs)
                action, key_id = params["Action"], params["AccessKeyId"]
            if action == "QuerySendDetails":  # faults target sends only; put it back for the next one
                if fault is not None:
                    fake.faults.appendleft(fault)
                    fault = None
                payload = {"Code": "OK", "Message": "OK", **fake.query(params), "RequestId": str(uuid.uuid4()).upper()}
                return _render(payload, 200, fmt, "QuerySendDetailsResponse", {})
            if fault is not None and fault.kind == "stall":
                await asyncio.sleep(fault.delay_s)
                raise _fault_error(fault)
            if fault is not None and fault.kind != "delay":
                raise _fault_error(fault)
            biz_id = fake.accept(params, "v3" if is_v3 else "v2", key_id)
            if report_url:
                push_reports(report_url, [_sms_report(m) for m in fake.messages if m["provider_id"] == biz_id])
            payload = {"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": str(uuid.uuid4()).upper()}
            response = _render(payload, 200, fmt, "SendSmsResponse", {})
        except AliyunError as err:
            response = _error_response(err, fmt)
        if fault is not None and fault.kind == "delay":  # the outcome is already decided
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
