"""Settings every service process shares; each service subclasses this once, in its own settings module."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Role = Literal["api", "consumer", "relay", "worker"]


class ServiceSettings(BaseSettings):
    """Read from the environment and validated at start: a missing or bad value stops the process."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    service_name: str
    environment: Literal["dev", "test", "prod"] = "dev"
    database_url: str = Field(description="postgresql://user:pass@host:port/db; asyncpg is added here")
    kafka_bootstrap_servers: str = Field(min_length=3)
    http_host: str = "127.0.0.1"
    http_port: int = Field(ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # NoDecode: ROLES is a plain comma list ("api,relay"), not JSON.
    roles: Annotated[frozenset[Role], NoDecode] = frozenset({"api", "consumer", "relay", "worker"})
    db_pool_size: int = Field(default=10, ge=1, le=200)

    # Messaging: a handler that keeps failing is retried this often, with exponential backoff, then
    # dead-lettered. Infrastructure errors (database down) are retried without limit instead.
    consumer_max_attempts: int = Field(default=5, ge=1, le=50)
    consumer_backoff_initial_s: float = Field(default=0.2, gt=0)
    consumer_backoff_max_s: float = Field(default=10.0, gt=0)
    consumer_batch_max: int = Field(default=200, ge=1, le=5000)
    relay_batch_max: int = Field(default=500, ge=1, le=10000)
    relay_poll_interval_s: float = Field(default=1.0, gt=0)
    shutdown_grace_s: float = Field(default=20.0, gt=0)

    @field_validator("database_url")
    @classmethod
    def _asyncpg(cls, v: str) -> str:
        for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
            if v.startswith(prefix):
                return "postgresql+asyncpg://" + v[len(prefix) :]
        raise ValueError("DATABASE_URL must start with postgresql://")

    @field_validator("roles", mode="before")
    @classmethod
    def _roles_csv(cls, v: object) -> object:
        if isinstance(v, str):
            if v.lstrip().startswith("["):
                return frozenset(json.loads(v))  # also accept the JSON list form
            return frozenset(r.strip() for r in v.split(",") if r.strip())
        return v

    @property
    def schema_name(self) -> str:
        """Each service owns exactly one PostgreSQL schema, named after it."""
        return self.service_name

    @property
    def libpq_url(self) -> str:
        return "postgresql://" + self.database_url.removeprefix("postgresql+asyncpg://")
