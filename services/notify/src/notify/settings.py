from __future__ import annotations

from datetime import time
from typing import Literal

from pydantic import BaseModel, Field, SecretStr

from gridline_boot.settings import ServiceSettings
from gridline_contracts.topics import SLA, TICKETS

from .syncback import EndpointConfig as SyncbackEndpoint


class TemplateRef(BaseModel):
    """A provider's approved template for one of our template names."""

    code: str
    params: list[str] = []  # positional order of our variables (Tencent's {1}, {2}…); Aliyun uses names


class SmsProviderConfig(BaseModel):
    """One SMS account; the failover provider is configured as JSON (``SMS_FAILOVER='{"kind":…}'``)."""

    kind: Literal["aliyun", "tencent"]
    base_url: str
    access_key_id: str
    access_key_secret: SecretStr
    sign_name: str
    sdk_app_id: str = "1400006666"  # Tencent only
    templates: dict[str, TemplateRef]


class WechatTemplate(BaseModel):
    """A mini-program subscribe template for one of our template names; values may use {order}, {due},
    {action} and {created} (when the notification was created, Beijing time)."""

    template_id: str
    page: str | None = None
    data: dict[str, str]  # keyword key (thing1, time2 …) → text with our variables


class WecomTemplate(BaseModel):
    """What staff read on WeCom for one of our template names (same variables as above)."""

    msgtype: Literal["text", "textcard", "markdown"] = "text"
    content: str  # text/markdown content, or the textcard description
    title: str = ""
    url: str = ""


class NotifySettings(ServiceSettings):
    service_name: str = "notify"
    http_port: int = 8004
    # Where events come from; overridable so a test or a staging copy can run on private topics.
    consumer_group: str = "notify"
    consume_topics: list[str] = [TICKETS.name, SLA.name]  # events notify has no rule for are skipped
    pii_key: SecretStr = Field(description="seals recipients' numbers at rest in notify")
    pii_transit_key: SecretStr = Field(description="opens contact tokens carried in intake's events")
    sms_provider: Literal["aliyun", "tencent"] = "aliyun"
    sms_provider_base_url: str = "https://dysmsapi.aliyuncs.com"
    sms_access_key_id: str = "testId"
    sms_access_key_secret: SecretStr = SecretStr("testSecret")
    sms_sign_name: str = "某市12345"
    sms_sdk_app_id: str = "1400006666"  # Tencent only
    sms_timeout_s: float = Field(default=5.0, gt=0)
    # Tencent's per-variable limit: 12 for individual-verified accounts (§2.3); enterprise: none.
    tencent_sms_variable_max_chars: int | None = Field(default=None, ge=1)
    # Our template names → the provider's approved template codes.
    sms_templates: dict[str, str] = {
        "ticket_received": "SMS_900000001",
        "ticket_assigned": "SMS_900000002",
        "sla_warning": "SMS_900000003",  # order, due
        "sla_breached": "SMS_900000004",  # order, due
        "escalation_raised": "SMS_900000005",  # order, action
        "ticket_result": "SMS_900000006",  # order
    }
    # Tried only when the primary has definitely not sent a message (reference §0.2, §4.3).
    sms_failover: SmsProviderConfig | None = None
    sender_batch_max: int = Field(default=50, ge=1, le=1000)
    sender_pipelines: int = Field(default=2, ge=1, le=8, description="batches in flight at once")
    # One keep-alive pool for every provider call: at least batch × pipelines, or calls wait for a
    # connection and the surplus ones are closed after each use (httpx keeps 20 by default).
    http_max_connections: int = Field(default=200, ge=1, le=2000)
    sender_max_attempts: int = Field(default=6, ge=1)
    sender_per_provider_attempts: int = Field(default=3, ge=1, description="transient failures before failover")
    sender_backoff_base_s: float = Field(default=1.0, gt=0)
    sender_backoff_cap_s: float = Field(default=60.0, gt=0)
    sender_poll_interval_s: float = Field(default=0.2, gt=0)
    # Settling ambiguous sends (timeouts, process killed mid-call) from the provider's own records.
    settle_grace_s: float = Field(default=120.0, ge=0, description="wait before trusting 'not in the records'")
    settle_retry_s: float = Field(default=30.0, gt=0)
    settle_give_up_s: float = Field(default=86400.0, gt=0)
    # Limits (tenants may override them through the API): quiet hours for non-urgent citizen
    # messages, in the tenant's time zone; per-recipient sends per rolling hour/day (None = no limit).
    quiet_start: time | None = time(22, 0)
    quiet_end: time = time(8, 0)
    per_recipient_hour: int | None = Field(default=None, ge=1)
    per_recipient_day: int | None = Field(default=50, ge=1, description="Aliyun's notification default (§1.7)")
    # Receipts: the token the providers' console URLs carry; sends with no receipt this long expire.
    receipt_token: SecretStr | None = None
    receipt_expiry_s: float = Field(default=72 * 3600, gt=0)
    tencent_pull_receipts: bool = Field(default=False, description="also pull Tencent's PullSmsSendStatus queue")
    interrupted_after_s: float | None = Field(default=None, gt=0, description="a 'sending' row this old is orphaned")
    # 12345 sync-back: platforms' callback endpoints (also settable by API; these win at each start).
    syncback_endpoints: list[SyncbackEndpoint] = []
    syncback_timeout_s: float = Field(default=5.0, gt=0)
    syncback_concurrency: int = Field(default=50, ge=1, le=1000, description="pushes in flight, across orders")
    syncback_backoff_base_s: float = Field(default=1.0, gt=0)
    syncback_backoff_cap_s: float = Field(default=300.0, gt=0)
    syncback_poll_interval_s: float = Field(default=0.5, gt=0)
    # WeChat mini-program subscribe messages for citizens (off while wechat_appid is unset).
    wechat_appid: str | None = None
    wechat_secret: SecretStr = SecretStr("")
    wechat_base_url: str = "https://api.weixin.qq.com"
    wechat_miniprogram_state: Literal["developer", "trial", "formal"] = "formal"
    wechat_templates: dict[str, WechatTemplate] = {
        "ticket_received": WechatTemplate(
            template_id="TPL_TICKET_RECEIVED",
            page="pages/order/detail?no={order}",
            data={"character_string1": "{order}", "thing2": "您反映的问题已受理，正在派单处理", "time3": "{created}"},
        )
    }
    # WeCom application messages for staff (off while wecom_corpid is unset); texts default to rules.py's.
    wecom_corpid: str | None = None
    wecom_corpsecret: SecretStr = SecretStr("")
    wecom_agentid: int = 1000002
    wecom_base_url: str = "https://qyapi.weixin.qq.com"
    wecom_duplicate_check_interval_s: int = Field(default=1800, ge=1, le=14400)
    wecom_templates: dict[str, WecomTemplate] = {}
