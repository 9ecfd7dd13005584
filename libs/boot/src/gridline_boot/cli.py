"""``python -m <service> migrate|run|settings``: the same entry point in every service."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from fastapi import FastAPI
from pydantic import ValidationError

from . import migrate
from .runner import serve
from .settings import ServiceSettings

S = TypeVar("S", bound=ServiceSettings)


def main(
    argv: list[str] | None,
    *,
    settings_cls: type[S],
    create_app: Callable[[S], FastAPI],
    migrations_dir: Path,
    extra_commands: Mapping[str, Callable[[S, list[str]], int]] | None = None,
) -> int:
    extra = dict(extra_commands or {})
    parser = argparse.ArgumentParser(prog=f"python -m {migrations_dir.parent.name}")
    parser.add_argument("command", choices=["run", "migrate", "downgrade", "check-settings", *extra])
    parser.add_argument("--revision", default=None)
    args, rest = parser.parse_known_args(argv)
    if rest and args.command not in extra:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        settings = settings_cls()
    except ValidationError as exc:
        # Fail at boot with the field names, never half-start with a bad configuration.
        print(f"invalid configuration for {settings_cls.__name__}:\n{exc}", file=sys.stderr)
        return 2
    if args.command in extra:
        return extra[args.command](settings, rest)
    if args.command == "check-settings":
        print(settings.model_dump_json(indent=2))
        return 0
    if args.command == "migrate":
        migrate.upgrade(migrations_dir, settings.libpq_url, settings.schema_name, args.revision or "heads")
        return 0
    if args.command == "downgrade":
        migrate.downgrade(migrations_dir, settings.libpq_url, settings.schema_name, args.revision or "base")
        return 0
    serve(create_app(settings), settings.http_host, settings.http_port, settings.shutdown_grace_s)
    return 0
