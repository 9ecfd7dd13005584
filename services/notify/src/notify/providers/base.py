"""What every SMS provider client takes and returns, and how transport failures are classified."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, Protocol

import httpx

Outcome = Literal["sent", "rejected", "retryable", "ambiguous"]


@dataclass(frozen=True)
class SmsMessage:
    # repr=False keeps the number out of any log line or traceback that formats the message.
    phone: str = field(repr=False)  # 11-digit mainland mobile or +86...
    sign_name: str
    template_code: str
    template_params: dict[str, str] = field(hash=False)
    out_id: str  # our notification id, echoed in receipts


@dataclass(frozen=True)
class SendResult:
    provider: str
    outcome: Outcome
    provider_message_id: str | None
    code: str
    message: str
    retry_after_s: float | None = None
    # The refusal is about this provider (quota, account, its own templates or per-number counters),
    # not about the message: another provider may well send it.
    failover: bool = False
    # The recipient cannot be reached on this channel (WeChat 43101 not subscribed, WeCom invaliduser,
    # channel misconfigured): the next channel in the recipient's order may reach them (rules.py).
    fallback: bool = False


LookupState = Literal["sent", "not_found", "unknown"]


@dataclass(frozen=True)
class Lookup:
    """What the provider's own records say about one earlier send, found by our out id."""

    state: LookupState  # unknown: the query itself failed, nothing can be concluded
    provider_message_id: str | None = None
    code: str = ""


class SmsProvider(Protocol):
    name: str

    async def send(self, msg: SmsMessage) -> SendResult: ...

    async def lookup(self, phone: str, out_id: str, sent_after: float) -> Lookup: ...


_MAINLAND_PREFIX = re.compile(r"^(?:\+86|0086|86)(?=1\d{10}$)")
_MOBILE = re.compile(r"(?<!\d)(?:\+?86|0086)?(1\d{2})\d{4}(\d{4})(?!\d)")
# Aliyun's SignatureDoesNotMatch echoes its whole string-to-sign, i.e. phone and template params.
_ECHOED_SIGNING_INPUT = re.compile(r"(?is)\s*server string to sign is:.*$")
_MAX_MESSAGE = 200


def national_number(phone: str) -> str:
    """`+8613800138000` / `008613800138000` / `8613800138000` → `13800138000`; anything else as is."""
    compact = phone.replace(" ", "").replace("-", "")
    return _MAINLAND_PREFIX.sub("", compact)


def redact_provider_text(text: str) -> str:
    """Make a provider's message safe to log and to store: no signing echo, no mobile numbers."""
    text = _ECHOED_SIGNING_INPUT.sub("", text)
    text = _MOBILE.sub(r"\1****\2", text)
    return text[:_MAX_MESSAGE]


# The request cannot have reached the provider, so sending again cannot duplicate an SMS.
_NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
    httpx.ProxyError,
)


def transport_failure(provider: str, exc: httpx.TransportError) -> SendResult:
    """Connect-phase failures are retryable; anything later may have sent the SMS (ambiguous)."""
    outcome: Outcome = "retryable" if isinstance(exc, _NOT_SENT) else "ambiguous"
    return SendResult(
        provider=provider,
        outcome=outcome,
        provider_message_id=None,
        code=f"transport.{type(exc).__name__}",
        message=redact_provider_text(str(exc)) or type(exc).__name__,
    )
