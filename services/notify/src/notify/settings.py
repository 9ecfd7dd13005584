from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from gridline_boot.settings import ServiceSettings


class NotifySettings(ServiceSettings):
    service_name: str = "notify"
    http_port: int = 8004
    pii_key: SecretStr = Field(description="seals recipients' numbers at rest in notify")
    pii_transit_key: SecretStr = Field(description="opens contact tokens carried in intake's events")
    sms_provider: Literal["aliyun", "tencent"] = "aliyun"
    sms_provider_base_url: str = "https://dysmsapi.aliyuncs.com"
    sms_access_key_id: str = "testId"
    sms_access_key_secret: SecretStr = SecretStr("testSecret")
    sms_sign_name: str = "某市12345"
    sms_sdk_app_id: str = "1400006666"  # Tencent only
    sms_timeout_s: float = Field(default=5.0, gt=0)
    # Our template names → the provider's approved template codes.
    sms_templates: dict[str, str] = {
        "ticket_received": "SMS_900000001",
        "ticket_assigned": "SMS_900000002",
    }
    sender_batch_max: int = Field(default=50, ge=1, le=1000)
    sender_max_attempts: int = Field(default=5, ge=1)
