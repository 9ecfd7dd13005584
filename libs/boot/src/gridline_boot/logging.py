"""JSON logs with the ticket and correlation ids of whatever is being handled.

Ids live in context variables set by the edges (HTTP middleware, consumer); every log record picks
them up, so handler code never passes them around.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter

ticket_id_var: ContextVar[str | None] = ContextVar("ticket_id", default=None)
correlation_id_var: ContextVar[str | None] = ContextVar("correlation_id", default=None)
tenant_var: ContextVar[str | None] = ContextVar("tenant", default=None)


class _ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        record.ticket_id = ticket_id_var.get()
        record.correlation_id = correlation_id_var.get()
        record.tenant = tenant_var.get()
        return True


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(_ContextFilter(service))
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(service)s %(ticket_id)s %(correlation_id)s %(tenant)s",
            rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
            json_ensure_ascii=False,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiokafka logs every reconnect at ERROR/WARNING; keep its noise at WARNING.
    # httpx logs request URLs at INFO, and some provider URLs carry a phone number.
    for noisy in ("aiokafka", "kafka", "uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel("WARNING")


def bind(*, ticket_id: Any = None, correlation_id: Any = None, tenant: Any = None) -> None:
    if ticket_id is not None:
        ticket_id_var.set(str(ticket_id))
    if correlation_id is not None:
        correlation_id_var.set(str(correlation_id))
    if tenant is not None:
        tenant_var.set(str(tenant))


def clear() -> None:
    """Forget the ids of the message just handled, so later log lines do not carry them."""
    ticket_id_var.set(None)
    correlation_id_var.set(None)
    tenant_var.set(None)
