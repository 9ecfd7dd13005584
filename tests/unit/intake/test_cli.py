"""``python -m intake issue-staff-token``: the token it prints is one the service accepts, with the
claims and lifetime asked for; bad arguments fail with a message and a non-zero code."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest

import intake
from gridline_boot.cli import main
from intake.app import create_app
from intake.auth import StaffTokens
from intake.cli import issue_staff_token
from intake.settings import IntakeSettings

KEYS = "k2:" + "n" * 40 + ",k1:" + "o" * 40
ENV = {
    **os.environ,
    "PII_KEY": "x",
    "PII_TRANSIT_KEY": "x",
    "DATABASE_URL": "postgresql://u@localhost/intake",
    "KAFKA_BOOTSTRAP_SERVERS": "localhost:9092",
    "STAFF_TOKEN_KEYS": KEYS,
}


def run(*args: str, env: dict[str, str] = ENV) -> subprocess.CompletedProcess[str]:
    """The real ``python -m intake`` (once: starting the interpreter with the app is slow)."""
    return subprocess.run(
        [sys.executable, "-m", "intake", "issue-staff-token", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@dataclass
class Out:
    returncode: int
    stdout: str
    stderr: str


def call(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str, env: dict[str, str] = ENV
) -> Out:
    """The same entry point in-process: settings from the environment, then the command."""
    for k in ENV:
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    try:
        code = main(
            ["issue-staff-token", *args],
            settings_cls=IntakeSettings,
            create_app=create_app,
            migrations_dir=Path(intake.__file__).parent / "migrations",
            extra_commands={"issue-staff-token": issue_staff_token},
        )
    except SystemExit as exc:  # argparse errors
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return Out(code, out.out, out.err)


def test_unit_token_is_accepted_with_its_claims_and_ttl() -> None:
    before = datetime.now(UTC)
    r = run("--tenant", "330106", "--role", "unit", "--unit", "330106-CGJ", "--ttl", "2h", "--sub", "ops-7")
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    p = StaffTokens(KEYS).verify(token)
    assert (p.kind, p.id, p.tenant, p.role, p.unit_code) == ("staff", "ops-7", "330106", "unit", "330106-CGJ")
    exp = datetime.fromtimestamp(jwt.decode(token, options={"verify_signature": False})["exp"], UTC)
    assert before + timedelta(hours=2) - timedelta(seconds=5) <= exp <= datetime.now(UTC) + timedelta(hours=2)
    assert jwt.get_unverified_header(token)["kid"] == "k2"  # the first key signs
    assert "330106-CGJ" in r.stderr and token not in r.stderr


def test_platform_token_defaults(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    r = call(monkeypatch, capsys, "--tenant", "330106", "--role", "platform")
    assert r.returncode == 0, r.stderr
    p = StaffTokens(KEYS).verify(r.stdout.strip())
    assert (p.role, p.unit_code, p.id) == ("platform", None, "cli:platform:330106")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--tenant", "330106", "--role", "unit"), "--unit is required"),
        (("--tenant", "330106", "--role", "platform", "--unit", "330106-CGJ"), "--unit is only for"),
        (("--tenant", "33", "--role", "platform"), "6-digit"),
        (("--tenant", "330106", "--role", "mayor"), "invalid choice"),
        (("--tenant", "330106", "--role", "platform", "--ttl", "30d"), "between 1m and 7d"),
        (("--tenant", "330106", "--role", "platform", "--ttl", "soon"), "bad TTL"),
    ],
)
def test_bad_arguments_are_refused(
    args: tuple[str, ...], message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    r = call(monkeypatch, capsys, *args)
    assert r.returncode == 2 and message in r.stderr and not r.stdout


def test_no_signing_key_configured(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    env = {k: v for k, v in ENV.items() if k != "STAFF_TOKEN_KEYS"}
    r = call(monkeypatch, capsys, "--tenant", "330106", "--role", "platform", env=env)
    assert r.returncode == 2 and "STAFF_TOKEN_KEYS" in r.stderr and not r.stdout
