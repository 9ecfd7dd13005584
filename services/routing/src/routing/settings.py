from __future__ import annotations

from pydantic import Field, SecretStr

from gridline_boot.settings import ServiceSettings


class RoutingSettings(ServiceSettings):
    service_name: str = "routing"
    http_port: int = 8002
    min_confidence: float = Field(default=0.8, ge=0, le=1, description="below this, a dispatcher decides")
    directory_refresh_s: float = Field(default=2.0, gt=0)
    # 一事多报 defaults; a category can override each in the directory bundle ("duplicates").
    duplicate_radius_m: float = Field(default=100.0, gt=0, le=10_000)
    duplicate_window_h: float = Field(default=72.0, gt=0, le=24 * 90)
    duplicate_same_address: bool = True
    duplicate_same_caller: bool = Field(default=False, description="also require the same caller (caller hash)")
    duplicate_require_same_address: bool = Field(default=False, description="a point match must share the address")
    duplicates_enabled: bool = True
    # 退单审核: a dispatcher decides within the window; after it the timeout rule applies.
    # In 工作日 on the tenant's working calendar (chinese_calendar + the bundle's "calendar" overrides).
    return_review_working_days: int = Field(default=1, ge=1, le=15)
    return_timeout_approves: bool = True
    max_reroutes: int = Field(default=3, ge=1, le=20, description="approved returns before 改派 needs a person")
    return_timer_interval_s: float = Field(default=5.0, gt=0)
    # Staff bearer tokens (the ones intake's staff use): kid:secret[,older]. Unset → every API call 401.
    staff_token_keys: SecretStr | None = None
    staff_token_audiences: str = Field(
        default="gridline-routing,gridline-intake", description="comma list; a token must name one of these"
    )
