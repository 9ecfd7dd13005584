from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from gridline_boot.settings import ServiceSettings

from .attachments import FetchSettings
from .domain import Rules
from .workdays import parse_overrides


class IntakeSettings(ServiceSettings):
    service_name: str = "intake"
    http_port: int = 8001
    # Seals reporters' contact data at rest; never leaves intake.
    pii_key: SecretStr = Field(description="kid:base64(32 bytes)[,older keys]")
    # Seals the contact token carried in events; shared with notify only.
    pii_transit_key: SecretStr = Field(description="kid:base64(32 bytes)[,older keys]")
    idempotency_ttl_hours: int = Field(default=48, ge=1)
    # Verifies staff tokens (JWT HS256): "kid:secret[,kid:secret…]", first one signs. Unset: no staff
    # endpoint accepts any token (401), which is what a citizen-only deployment wants.
    staff_token_keys: SecretStr | None = None
    # Integrations allowed to push (12345 platforms, Open311 clients): JSON list of auth.Integration.
    integrations: SecretStr = SecretStr("[]")
    signature_max_skew_s: int = Field(default=300, ge=10, le=3600)
    # Per-phone limit on citizen submissions (a fixed one-hour window).
    reports_per_phone_per_hour: int = Field(default=20, ge=1)
    # Per-openid and (unsigned submissions only) per-client-IP limits, same window.
    reports_per_openid_per_hour: int = Field(default=20, ge=1)
    reports_per_ip_per_hour: int = Field(default=60, ge=1)
    # The header our ingress sets to the client address (e.g. X-Real-IP; it must overwrite any value
    # the client sent). Unset: the TCP peer, which behind a proxy is the proxy.
    client_ip_header: str | None = Field(default=None, pattern=r"^[A-Za-z0-9-]{1,64}$")
    max_request_bytes: int = Field(default=1_000_000, ge=10_000)
    # Attachments (photos): checked by content, stored locally or in an S3-compatible bucket.
    storage_backend: Literal["local", "s3"] = "local"
    storage_dir: Path = Path("var/intake-attachments")
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None  # MinIO, OSS, COS… ; unset for AWS
    s3_region: str | None = None
    s3_prefix: str = "intake"
    max_photo_bytes: int = Field(default=5_000_000, ge=10_000)
    max_photos: int = Field(default=9, ge=1, le=20)
    # 12345 attachment URLs, fetched after the order is saved (attachments.py; role "worker").
    attachment_max_bytes: int = Field(default=20_000_000, ge=10_000)
    attachment_max_attempts: int = Field(default=5, ge=1, le=20)
    attachment_timeout_s: float = Field(default=30.0, gt=0, le=300)
    attachment_ca_file: Path | None = None  # a private CA for the platform's file server
    attachment_poll_s: float = Field(default=5.0, gt=0)
    # Open311 services: the tenant's category catalogue (JSON list of service_code, service_name,
    # group, keywords, description); unset: the packaged demo catalogue.
    open311_catalogue: Path | None = None
    # Lifecycle windows (domain §1.5), see domain.Rules: request windows in working days.
    return_window_working_days: int = Field(default=2, ge=1, le=30)
    extension_lead_working_days: int = Field(default=1, ge=0, le=10)
    # Per-tenant working-day overrides, the same entries as in escalation's calendar (a year
    # chinese_calendar does not cover yet, local holidays): JSON
    # {"330106": {"days": {"2027-01-01": false, "2027-02-07": true}, "complete_years": [2027]}}.
    calendar_overrides: str = "{}"
    max_extension_days: int = Field(default=10, ge=1)
    max_extensions: int = Field(default=2, ge=0)
    max_redo: int = Field(default=2, ge=0)
    evaluation_window_days: int = Field(default=7, ge=0)
    reopen_window_days: int = Field(default=30, ge=0)

    @model_validator(mode="after")
    def _no_weak_keys_in_prod(self) -> IntakeSettings:
        if self.environment == "prod" and self.staff_token_keys is not None:
            for part in self.staff_token_keys.get_secret_value().split(","):
                if len(part.partition(":")[2]) < 32:
                    raise ValueError("STAFF_TOKEN_KEYS secrets must be 32+ characters in prod")
        return self

    @model_validator(mode="after")
    def _calendar_overrides_parse(self) -> IntakeSettings:
        try:
            raw = json.loads(self.calendar_overrides or "{}")
            if not isinstance(raw, dict):
                raise ValueError("an object keyed by tenant")
            parse_overrides(raw)
        except ValueError as exc:  # JSONDecodeError is a ValueError
            raise ValueError(f"CALENDAR_OVERRIDES: {exc}") from exc
        return self

    @model_validator(mode="after")
    def _s3_needs_bucket(self) -> IntakeSettings:
        if self.storage_backend == "s3" and not self.s3_bucket:
            raise ValueError("STORAGE_BACKEND=s3 needs S3_BUCKET")
        return self

    @property
    def max_upload_bytes(self) -> int:
        return self.max_photos * self.max_photo_bytes + 100_000

    @property
    def fetch_settings(self) -> FetchSettings:
        return FetchSettings(
            max_bytes=self.attachment_max_bytes,
            max_attempts=self.attachment_max_attempts,
            read_timeout_s=self.attachment_timeout_s,
            ca_file=self.attachment_ca_file,
        )

    @property
    def rules(self) -> Rules:
        return Rules(
            return_window_working_days=self.return_window_working_days,
            extension_lead_working_days=self.extension_lead_working_days,
            calendars=MappingProxyType(parse_overrides(json.loads(self.calendar_overrides or "{}"))),
            max_extension_days=self.max_extension_days,
            max_extensions=self.max_extensions,
            max_redo=self.max_redo,
            evaluation_window=timedelta(days=self.evaluation_window_days),
            reopen_window=timedelta(days=self.reopen_window_days),
        )
