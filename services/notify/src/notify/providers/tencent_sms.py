"""Tencent Cloud SMS 2021-01-11 `SendSms` client with TC3-HMAC-SHA256 signing (reference §2)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

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

DEFAULT_BASE_URL = "https://sms.tencentcloudapi.com"
API_VERSION = "2021-01-11"
SERVICE = "sms"
TC3_ALGORITHM = "TC3-HMAC-SHA256"
# Exactly what the official SDK sends and signs; the signed value must equal the header byte for byte.
CONTENT_TYPE = "application/json"


# --- signer (pure) --------------------------------------------------------------------------------


def tc3_date(timestamp: int) -> str:
    """The credential date is the UTC date of the timestamp, not the Beijing one (§2.2)."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def tc3_canonical_request(method: str, host: str, content_type: str, body: bytes, query: str = "") -> str:
    payload = b"" if method.upper() == "GET" else body
    return "\n".join(
        [
            method.upper(),
            "/",
            query,
            f"content-type:{content_type.strip().lower()}\nhost:{host.strip().lower()}\n",
            "content-type;host",
            hashlib.sha256(payload).hexdigest(),
        ]
    )


def tc3_string_to_sign(timestamp: int, service: str, canonical_request: str) -> str:
    return "\n".join(
        [
            TC3_ALGORITHM,
            str(timestamp),
            f"{tc3_date(timestamp)}/{service}/tc3_request",
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )


def tc3_signature(secret_key: str, timestamp: int, service: str, canonical_request: str) -> str:
    def mac(key: bytes, msg: str) -> bytes:
        return hmac.new(key, msg.encode(), hashlib.sha256).digest()

    signing_key = mac(mac(mac(f"TC3{secret_key}".encode(), tc3_date(timestamp)), service), "tc3_request")
    string_to_sign = tc3_string_to_sign(timestamp, service, canonical_request)
    return hmac.new(signing_key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def tc3_authorization(
    secret_id: str,
    secret_key: str,
    *,
    service: str,
    host: str,
    content_type: str,
    body: bytes,
    timestamp: int,
    method: str = "POST",
    query: str = "",
) -> str:
    canonical = tc3_canonical_request(method, host, content_type, body, query)
    signature = tc3_signature(secret_key, timestamp, service, canonical)
    return (
        f"{TC3_ALGORITHM} Credential={secret_id}/{tc3_date(timestamp)}/{service}/tc3_request, "
        f"SignedHeaders=content-type;host, Signature={signature}"
    )


# --- classification (§2.4) ------------------------------------------------------------------------

# The provider may have handed the SMS to a carrier before failing: reconcile, don't resend.
_AMBIGUOUS = frozenset(
    {"InternalError", "InternalError.Timeout", "InternalError.SendAndRecvFail", "InternalError.OtherError"}
)
_RETRY_AFTER: Mapping[str, float | None] = {
    "LimitExceeded.PhoneNumberThirtySecondLimit": 30.0,
    "LimitExceeded.PhoneNumberOneHourLimit": 3600.0,
    "LimitExceeded.PhoneNumberDailyLimit": 86400.0,
    "LimitExceeded.PhoneNumberSameContentDailyLimit": 86400.0,
    "LimitExceeded.DeliveryFrequencyLimit": None,
    # Clock skew: the request was refused before processing, a fresh signature may pass.
    "AuthFailure.SignatureExpire": None,
    "InternalError.RequestTimeException": None,
}


def classify(code: str) -> tuple[Outcome, float | None]:
    """Map a request-level or per-number code; unknown codes are rejected, never resent."""
    if code == "Ok":
        return "sent", None
    if code in _AMBIGUOUS:
        return "ambiguous", None
    if code in _RETRY_AFTER:
        return "retryable", _RETRY_AFTER[code]
    if code.startswith("RequestLimitExceeded"):
        return "retryable", None
    return "rejected", None


# Refusals about our Tencent account, app, signature or templates, or its own per-number counters.
_PROVIDER_SIDE = frozenset(
    {
        "LimitExceeded.PhoneNumberOneHourLimit",
        "LimitExceeded.PhoneNumberDailyLimit",
        "LimitExceeded.PhoneNumberSameContentDailyLimit",
        "LimitExceeded.AppDailyLimit",
        "LimitExceeded.DailyLimit",
        "FailedOperation.InsufficientBalanceInSmsPackage",
        "UnauthorizedOperation.SerivceSuspendDueToArrears",
        "FailedOperation.SignatureIncorrectOrUnapproved",
        "FailedOperation.TemplateIncorrectOrUnapproved",
        "FailedOperation.TemplateParamSetNotMatchApprovedTemplate",
        "UnauthorizedOperation.SmsSdkAppIdVerifyFail",
        "UnauthorizedOperation.RequestIpNotInWhitelist",
        "UnauthorizedOperation.SdkAppIdIsDisabled",
        "InvalidParameterValue.SdkAppIdNotExist",
        "AuthFailure.SignatureFailure",
        "AuthFailure.SecretIdNotFound",
        "AuthFailure.InvalidSecretId",
    }
)


def can_fail_over(code: str) -> bool:
    return code in _PROVIDER_SIDE


def template_param_set(params: Mapping[str, str]) -> list[str]:
    """Tencent templates are positional ({1}, {2}…): numeric keys sort numerically, else dict order."""
    if params and all(k.isdigit() for k in params):
        return [params[k] for k in sorted(params, key=int)]
    return list(params.values())


def _read_reply(body: Any) -> tuple[Mapping[str, Any], bool, str | None]:
    """(request-level Error or our number's SendStatusSet entry, is_error, RequestId)."""
    reply = body["Response"]
    error = reply.get("Error")
    item = error if error else reply["SendStatusSet"][0]
    if not isinstance(item, dict):
        raise TypeError("unexpected reply shape")
    return item, bool(error), reply.get("RequestId")


# --- client ---------------------------------------------------------------------------------------


class TencentSmsClient:
    """Sends one `SendSms` per message. No retries inside: SendSms is not idempotent (§0.2)."""

    name: str = "tencent"

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        secret_id: str,
        secret_key: str,
        sdk_app_id: str,
        region: str = "ap-guangzhou",
        base_url: str = DEFAULT_BASE_URL,
        timeout_s: float | None = None,
        clock: Callable[[], float] = time.time,
        max_param_chars: int | None = None,
    ) -> None:
        self._http = http
        # Individual-verified accounts: ≤12 characters per variable (§2.3). A longer value is refused
        # here, never cut: our variables are ticket numbers and deadlines, wrong when truncated.
        self._max_param_chars = max_param_chars
        self._secret_id = secret_id
        self._secret_key = secret_key
        self._sdk_app_id = sdk_app_id
        self._region = region
        self._url = httpx.URL(base_url).join("/")
        self._timeout = httpx.Timeout(timeout_s) if timeout_s is not None else http.timeout
        self._clock = clock

    def build_request(self, msg: SmsMessage) -> httpx.Request:
        payload = {
            "PhoneNumberSet": [f"+86{national_number(msg.phone)}"],
            "SmsSdkAppId": self._sdk_app_id,
            "SignName": msg.sign_name,
            "TemplateId": msg.template_code,
            "TemplateParamSet": template_param_set(msg.template_params),
            "SessionContext": msg.out_id,
        }
        return self._build("SendSms", payload)

    def _build(self, action: str, payload: Mapping[str, Any]) -> httpx.Request:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        timestamp = int(self._clock())
        request = self._http.build_request(
            "POST",
            self._url,
            content=body,
            headers={
                "Content-Type": CONTENT_TYPE,
                "X-TC-Action": action,
                "X-TC-Version": API_VERSION,
                "X-TC-Timestamp": str(timestamp),
                "X-TC-Region": self._region,
            },
            timeout=self._timeout,
        )
        # Sign the Host httpx will actually send (it differs from the default under a fake).
        request.headers["Authorization"] = tc3_authorization(
            self._secret_id,
            self._secret_key,
            service=SERVICE,
            host=request.headers["host"],
            content_type=CONTENT_TYPE,
            body=body,
            timestamp=timestamp,
        )
        return request

    async def send(self, msg: SmsMessage) -> SendResult:
        limit = self._max_param_chars
        if limit is not None and any(len(v) > limit for v in msg.template_params.values()):
            # Tencent would refuse it (InvalidParameterValue.TemplateParameterLengthLimit); another
            # provider may take it.
            return SendResult(self.name, "rejected", None, "param_too_long", f"模板变量超过 {limit} 字", failover=True)
        request = self.build_request(msg)
        try:
            response = await self._http.send(request)
        except httpx.TransportError as exc:
            result = transport_failure(self.name, exc)
            logger.warning("tencent sms %s out_id=%s: %s", result.outcome, msg.out_id, result.code)
            return result
        return self._result(msg, response)

    def _result(self, msg: SmsMessage, response: httpx.Response) -> SendResult:
        # The SDK treats any non-200 as a network error: the body is not Tencent's to trust.
        if response.status_code != 200:
            outcome: Outcome = "retryable" if response.status_code >= 500 or response.status_code == 429 else "rejected"
            logger.warning("tencent sms HTTP %s out_id=%s", response.status_code, msg.out_id)
            return SendResult(self.name, outcome, None, f"http.{response.status_code}", response.reason_phrase)
        try:
            item, is_error, request_id = _read_reply(response.json())
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            # A 200 we cannot read may still have been a send.
            logger.warning("tencent sms unreadable reply out_id=%s", msg.out_id)
            return SendResult(self.name, "ambiguous", None, "http.200", "unreadable body")
        code = str(item.get("Code", ""))
        message = redact_provider_text(str(item.get("Message", "")))
        outcome, retry_after = classify(code)
        serial_no = item.get("SerialNo") if not is_error and outcome == "sent" else None
        logger.log(
            logging.INFO if outcome == "sent" else logging.WARNING,
            "tencent sms %s out_id=%s code=%s request_id=%s serial_no=%s",
            outcome,
            msg.out_id,
            code,
            request_id,
            serial_no,
        )
        return SendResult(
            provider=self.name,
            outcome=outcome,
            provider_message_id=str(serial_no) if serial_no else None,
            code=code,
            message=message,
            retry_after_s=retry_after,
            failover=outcome != "sent" and can_fail_over(code),
        )

    async def pull(self, action: str, payload: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        """One `PullSmsSendStatus*` call → the report set, or None when the call failed."""
        try:
            response = await self._http.send(self._build(action, {"SmsSdkAppId": self._sdk_app_id, **payload}))
            reply = response.json()["Response"] if response.status_code == 200 else None
        except (httpx.TransportError, ValueError, KeyError, TypeError) as exc:
            logger.warning("tencent %s failed: %s", action, type(exc).__name__)
            return None
        if not isinstance(reply, dict) or "Error" in reply:
            code = reply["Error"].get("Code") if isinstance(reply, dict) else response.status_code
            logger.warning("tencent %s refused: %s", action, code)
            return None
        items = reply.get("PullSmsSendStatusSet") or []
        return [i for i in items if isinstance(i, dict)]

    async def pull_reports(self, limit: int = 100) -> list[dict[str, Any]] | None:
        """`PullSmsSendStatus`: the next status reports from Tencent's queue (each is handed out once)."""
        return await self.pull("PullSmsSendStatus", {"Limit": limit})

    async def lookup(self, phone: str, out_id: str, sent_after: float) -> Lookup:
        """`PullSmsSendStatusByPhoneNumber` since `sent_after`, matched by SessionContext.

        Tencent lists a send only once the carrier reported on it, so "not found" is trusted only
        after a grace period long enough for reports to arrive (the caller's `settle_grace_s`).
        """
        begin = int(sent_after) - 60
        for offset in range(0, 2000, 100):
            payload = {
                "PhoneNumber": f"+86{national_number(phone)}",
                "BeginTime": begin,
                "Offset": offset,
                "Limit": 100,
            }
            items = await self.pull("PullSmsSendStatusByPhoneNumber", payload)
            if items is None:
                return Lookup("unknown", code="query_failed")
            for item in items:
                if item.get("SessionContext") == out_id:
                    return Lookup("sent", str(item.get("SerialNo") or "") or None, str(item.get("ReportStatus", "")))
            if len(items) < 100:
                return Lookup("not_found")
        return Lookup("unknown", code="too_many_sends_to_search")
