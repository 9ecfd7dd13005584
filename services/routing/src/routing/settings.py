from __future__ import annotations

from pydantic import Field

from gridline_boot.settings import ServiceSettings


class RoutingSettings(ServiceSettings):
    service_name: str = "routing"
    http_port: int = 8002
    min_confidence: float = Field(default=0.8, ge=0, le=1, description="below this, a dispatcher decides")
    directory_refresh_s: float = Field(default=2.0, gt=0)
