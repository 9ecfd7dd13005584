"""Alembic for one service's schema, run programmatically (``python -m <service> migrate``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config


def alembic_config(migrations_dir: Path, libpq_url: str, schema: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.set_main_option("sqlalchemy.url", libpq_url.replace("postgresql://", "postgresql+asyncpg://", 1))
    cfg.set_main_option("gridline.schema", schema)
    return cfg


def upgrade(migrations_dir: Path, libpq_url: str, schema: str, revision: str = "heads") -> None:
    # "heads": two independent revisions on one parent (work done in parallel) both apply, no merge file needed.
    command.upgrade(alembic_config(migrations_dir, libpq_url, schema), revision)


def downgrade(migrations_dir: Path, libpq_url: str, schema: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(migrations_dir, libpq_url, schema), revision)
