from __future__ import annotations

from pydantic import Field, SecretStr

from gridline_boot.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    service_name: str = "intake"
    http_port: int = 8001
    # Seals reporters' contact data at rest; never leaves intake.
    pii_key: SecretStr = Field(description="kid:base64(32 bytes)[,older keys]")
    # Seals the contact token carried in events; shared with notify only.
    pii_transit_key: SecretStr = Field(description="kid:base64(32 bytes)[,older keys]")
    idempotency_ttl_hours: int = Field(default=48, ge=1)
