"""Aliyun Dysmsapi 2017-05-25 `SendSms` client (reference §1).

V3 (`ACS3-HMAC-SHA256`, params in the query, empty body) is the default, as in the official SDK;
V2 (RPC `HMAC-SHA1`) is kept for accounts or gateways that still need it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import httpx

from notify.providers.base import (
    Lookup,
    Outcome,
    SendResult,
    SmsMessage,
    national_number,
    redact_provider_text,
    transport_failure,
)

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://dysmsapi.aliyuncs.com"
API_VERSION = "2017-05-25"
V3_ALGORITHM = "ACS3-HMAC-SHA256"
# Headers the gateway requires under a V3 signature; anything else we send is left unsigned.
_V3_SIGNABLE = ("host", "content-type")


# --- signers (pure) -------------------------------------------------------------------------------


def percent_encode(value: str) -> str:
    """RFC 3986 encoding both Aliyun signatures use: only A-Z a-z 0-9 - _ . ~ stay literal."""
    return urllib.parse.quote(value, safe="-_.~")


def canonical_query(params: Mapping[str, str]) -> str:
    return "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params.items()))


def rpc_v2_string_to_sign(method: str, params: Mapping[str, str]) -> str:
    unsigned = {k: v for k, v in params.items() if k != "Signature"}
    return f"{method.upper()}&{percent_encode('/')}&{percent_encode(canonical_query(unsigned))}"


def rpc_v2_signature(method: str, params: Mapping[str, str], secret: str) -> str:
    """Base64 HMAC-SHA1 keyed with `secret + "&"` (§1.3)."""
    mac = hmac.new(f"{secret}&".encode(), rpc_v2_string_to_sign(method, params).encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def acs3_canonical_request(
    method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes
) -> tuple[str, str]:
    """Return (CanonicalRequest, SignedHeaders) for §1.4; signs host, content-type and x-acs-*."""
    lowered = {k.lower(): str(v).strip() for k, v in headers.items()}
    lowered["x-acs-content-sha256"] = hashlib.sha256(body).hexdigest()
    names = sorted(k for k in lowered if k in _V3_SIGNABLE or k.startswith("x-acs-"))
    signed_headers = ";".join(names)
    canonical = "\n".join(
        [
            method.upper(),
            path or "/",
            canonical_query(query),
            "".join(f"{k}:{lowered[k]}\n" for k in names),
            signed_headers,
            lowered["x-acs-content-sha256"],
        ]
    )
    return canonical, signed_headers


def acs3_authorization(
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    body: bytes,
    access_key_id: str,
    secret: str,
) -> str:
    canonical, signed_headers = acs3_canonical_request(method, path, query, headers, body)
    string_to_sign = f"{V3_ALGORITHM}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    signature = hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()
    return f"{V3_ALGORITHM} Credential={access_key_id},SignedHeaders={signed_headers},Signature={signature}"


# --- classification (§1.6) ------------------------------------------------------------------------

# Signing-time problems: the gateway refused before doing anything, a fresh signature may pass.
_RESIGN_CODES = frozenset({"SignatureNonceUsed"})
_FLOW_CONTROL_WINDOWS = (("分钟级", 60.0), ("小时级", 3600.0), ("天级", 86400.0))


def _flow_control_retry_after(message: str) -> float:
    for marker, seconds in _FLOW_CONTROL_WINDOWS:
        if marker in message:
            return seconds
    return 60.0


def _retry_after_header(response: httpx.Response) -> float | None:
    raw = response.headers.get("x-acs-retry-after")
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def classify(status: int, code: str, message: str, retry_after: float | None) -> tuple[Outcome, float | None]:
    """Map an Aliyun answer to an outcome; unknown business codes are rejected, never resent."""
    if status == 200:
        if code == "OK":
            return "sent", None
        if code == "isv.BUSINESS_LIMIT_CONTROL":
            return "retryable", _flow_control_retry_after(message)
        if code == "isp.SYSTEM_ERROR":
            return "retryable", None
        return "rejected", None
    if status >= 500 or status == 429 or code.startswith("Throttling"):
        return "retryable", retry_after
    if code.startswith("InvalidTimeStamp") or code in _RESIGN_CODES:
        return "retryable", None
    return "rejected", None


# Refusals about our Aliyun account, signature or templates: Tencent has its own (§1.6 "fail over").
_PROVIDER_SIDE = frozenset(
    {
        "isv.DAY_LIMIT_CONTROL",
        "isv.MONTH_LIMIT_CONTROL",
        "isv.AMOUNT_NOT_ENOUGH",
        "isv.OUT_OF_SERVICE",
        "isv.SMS_TEMPLATE_ILLEGAL",
        "isv.SMS_SIGNATURE_ILLEGAL",
        "isv.SMS_SIGN_ILLEGAL",
        "isv.SIGN_STATE_ILLEGAL",
        "isv.SMS_SIGNATURE_SCENE_ILLEGAL",
        "isv.DENY_IP_RANGE",
        "isp.RAM_PERMISSION_DENY",
        "isv.ACCOUNT_NOT_EXISTS",
        "isv.ACCOUNT_ABNORMAL",
        "isv.PRODUCT_UN_SUBSCRIPT",
        "isv.PRODUCT_UNSUBSCRIBE",
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId.NotFound",
    }
)


def can_fail_over(code: str, retry_after: float | None) -> bool:
    """Hour/day flow control is Aliyun's own counter; minute-level is waited out on Aliyun."""
    return code in _PROVIDER_SIDE or (code == "isv.BUSINESS_LIMIT_CONTROL" and (retry_after or 0) >= 3600)


_BEIJING = ZoneInfo("Asia/Shanghai")
_QUERY_PAGE = 50
_QUERY_MAX_PAGES = 20


# --- client ---------------------------------------------------------------------------------------


def _default_nonce() -> str:
    return uuid.uuid4().hex


class AliyunSmsClient:
    """Sends one `SendSms` per message. No retries inside: SendSms is not idempotent (§0.2)."""

    name: str = "aliyun"

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        access_key_id: str,
        access_key_secret: str,
        base_url: str = DEFAULT_BASE_URL,
        signature_version: Literal["v3", "v2"] = "v3",
        region_id: str = "cn-hangzhou",
        timeout_s: float | None = None,
        clock: Callable[[], float] = time.time,
        nonce: Callable[[], str] = _default_nonce,
    ) -> None:
        self._http = http
        self._key_id = access_key_id
        self._secret = access_key_secret
        self._url = httpx.URL(base_url).join("/")
        self._version = signature_version
        self._region_id = region_id
        self._timeout = httpx.Timeout(timeout_s) if timeout_s is not None else http.timeout
        self._clock = clock
        self._nonce = nonce

    def _api_params(self, msg: SmsMessage) -> dict[str, str]:
        return {
            "PhoneNumbers": national_number(msg.phone),
            "SignName": msg.sign_name,
            "TemplateCode": msg.template_code,
            "TemplateParam": json.dumps(msg.template_params, ensure_ascii=False, separators=(",", ":")),
            "OutId": msg.out_id,
        }

    def _timestamp(self) -> str:
        return datetime.fromtimestamp(self._clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def build_request(self, msg: SmsMessage) -> httpx.Request:
        return self._build("SendSms", self._api_params(msg))

    def _build(self, action: str, params: dict[str, str]) -> httpx.Request:
        if self._version == "v2":
            return self._build_v2(action, params)
        return self._build_v3(action, params)

    def _build_v3(self, action: str, params: dict[str, str]) -> httpx.Request:
        body = b""
        request = self._http.build_request(
            "POST",
            self._url.copy_with(query=canonical_query(params).encode()),
            content=body,
            headers={
                "x-acs-action": action,
                "x-acs-version": API_VERSION,
                "x-acs-date": self._timestamp(),
                "x-acs-signature-nonce": self._nonce(),
                "x-acs-content-sha256": hashlib.sha256(body).hexdigest(),
            },
            timeout=self._timeout,
        )
        # Sign the Host httpx will actually send (it differs from the default under a fake).
        request.headers["Authorization"] = acs3_authorization(
            "POST", "/", params, dict(request.headers), body, self._key_id, self._secret
        )
        return request

    def _build_v2(self, action: str, params: dict[str, str]) -> httpx.Request:
        signed = {
            **params,
            "AccessKeyId": self._key_id,
            "Action": action,
            "Format": "JSON",
            "RegionId": self._region_id,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": self._nonce(),
            "SignatureVersion": "1.0",
            "Timestamp": self._timestamp(),
            "Version": API_VERSION,
        }
        signed["Signature"] = rpc_v2_signature("POST", signed, self._secret)
        # POST form rather than GET query keeps the phone number out of URLs and access logs.
        return self._http.build_request(
            "POST",
            self._url,
            content=canonical_query(signed).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            timeout=self._timeout,
        )

    async def send(self, msg: SmsMessage) -> SendResult:
        request = self.build_request(msg)
        try:
            response = await self._http.send(request)
        except httpx.TransportError as exc:
            result = transport_failure(self.name, exc)
            logger.warning("aliyun sms %s out_id=%s: %s", result.outcome, msg.out_id, result.code)
            return result
        return self._result(msg, response)

    def _result(self, msg: SmsMessage, response: httpx.Response) -> SendResult:
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or (response.status_code == 200 and "Code" not in body):
            # A 200 we cannot read may still have been a send.
            outcome: Outcome = (
                "ambiguous"
                if response.status_code == 200
                else ("retryable" if response.status_code >= 500 else "rejected")
            )
            logger.warning("aliyun sms unreadable HTTP %s out_id=%s", response.status_code, msg.out_id)
            return SendResult(self.name, outcome, None, f"http.{response.status_code}", "unreadable body")
        code = str(body.get("Code", f"http.{response.status_code}"))
        message = redact_provider_text(str(body.get("Message", "")))
        outcome, retry_after = classify(response.status_code, code, message, _retry_after_header(response))
        biz_id = body.get("BizId") if outcome == "sent" else None
        logger.log(
            logging.INFO if outcome == "sent" else logging.WARNING,
            "aliyun sms %s out_id=%s code=%s request_id=%s biz_id=%s",
            outcome,
            msg.out_id,
            code,
            body.get("RequestId"),
            biz_id,
        )
        return SendResult(
            provider=self.name,
            outcome=outcome,
            provider_message_id=str(biz_id) if biz_id is not None else None,
            code=code,
            message=message,
            retry_after_s=retry_after,
            failover=outcome != "sent" and can_fail_over(code, retry_after),
        )

    async def lookup(self, phone: str, out_id: str, sent_after: float) -> Lookup:
        """`QuerySendDetails` for the number on each Beijing date since `sent_after`, matched by OutId.

        Aliyun lists a submitted SMS at once (SendStatus 1 while waiting for the carrier), so an
        OutId missing from a successful query means that send never happened.
        """
        first = datetime.fromtimestamp(sent_after, _BEIJING).date()
        last = datetime.fromtimestamp(self._clock(), _BEIJING).date()
        day = first
        while day <= last:
            for page in range(1, _QUERY_MAX_PAGES + 1):
                params = {
                    "PhoneNumber": national_number(phone),
                    "SendDate": day.strftime("%Y%m%d"),
                    "PageSize": str(_QUERY_PAGE),
                    "CurrentPage": str(page),
                }
                try:
                    response = await self._http.send(self._build("QuerySendDetails", params))
                    body = response.json()
                except (httpx.TransportError, ValueError) as exc:
                    logger.warning("aliyun QuerySendDetails failed out_id=%s: %s", out_id, type(exc).__name__)
                    return Lookup("unknown", code=f"transport.{type(exc).__name__}")
                if response.status_code != 200 or not isinstance(body, dict) or body.get("Code") != "OK":
                    code = str(body.get("Code")) if isinstance(body, dict) else f"http.{response.status_code}"
                    logger.warning("aliyun QuerySendDetails refused out_id=%s code=%s", out_id, code)
                    return Lookup("unknown", code=code)
                dtos = (body.get("SmsSendDetailDTOs") or {}).get("SmsSendDetailDTO") or []
                for dto in dtos:
                    if isinstance(dto, dict) and dto.get("OutId") == out_id:
                        return Lookup("sent", None, str(dto.get("ErrCode", "")))
                if page * _QUERY_PAGE >= int(body.get("TotalCount", 0)):
                    break
            else:
                return Lookup("unknown", code="too_many_sends_to_search")
            day += timedelta(days=1)
        return Lookup("not_found")
