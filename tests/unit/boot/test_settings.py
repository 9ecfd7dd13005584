from __future__ import annotations

import pytest
from pydantic import ValidationError

from gridline_boot.settings import ServiceSettings

BASE = {
    "service_name": "x",
    "database_url": "postgresql://u@h:5432/d",
    "kafka_bootstrap_servers": "k:9092",
    "http_port": 8000,
}


def test_database_url_gets_the_asyncpg_driver_and_libpq_form_is_kept() -> None:
    s = ServiceSettings(**BASE)  # type: ignore[arg-type]
    assert s.database_url == "postgresql+asyncpg://u@h:5432/d"
    assert s.libpq_url == "postgresql://u@h:5432/d"


@pytest.mark.parametrize("value", ["api,relay", " api , relay ", '["api", "relay"]'])
def test_roles_from_the_environment(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("ROLES", value)
    assert ServiceSettings(**BASE).roles == {"api", "relay"}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [("database_url", "mysql://h/d"), ("http_port", 0), ("log_level", "LOUD"), ("roles", "api,teleport")],
)
def test_bad_values_stop_the_process(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        ServiceSettings(**{**BASE, field: value})  # type: ignore[arg-type]
