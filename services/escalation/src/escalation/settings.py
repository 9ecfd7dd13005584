from __future__ import annotations

from pydantic import Field

from gridline_boot.settings import ServiceSettings


class EscalationSettings(ServiceSettings):
    service_name: str = "escalation"
    http_port: int = 8003
    timezone: str = "Asia/Shanghai"
    timer_interval_s: float = Field(default=1.0, gt=0)
    timer_batch_max: int = Field(default=200, ge=1)
    # Supervision-record deadlines and review clocks (deadline_timer): minutes-to-days deadlines, so a
    # slower poll than the SLA timer's is plenty; it also bounds how late supervision.opened follows.
    deadline_interval_s: float = Field(default=2.0, gt=0)
    # Per-unit rate gauges: units on the month's 红黑榜 (top and bottom k) per tenant; 0 turns them off.
    rate_gauge_k: int = Field(default=10, ge=0, le=50)
    rate_gauge_interval_s: float = Field(default=300.0, gt=0)
