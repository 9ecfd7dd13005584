"""Operator commands beside migrate/run: ``python -m intake issue-staff-token``."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import get_args

from .auth import StaffRole, StaffTokens
from .settings import IntakeSettings

UNIT_ROLES = ("unit", "grid_staff")
MAX_TTL = timedelta(days=7)  # a longer-lived bearer token is a standing credential; use the IdP
_TTL = re.compile(r"^(\d+)([smhd]?)$")


def parse_ttl(text: str) -> timedelta:
    """``90`` (seconds), ``30m``, ``8h``, ``2d``; between one minute and seven days."""
    m = _TTL.match(text.strip())
    if m is None:
        raise argparse.ArgumentTypeError(f"bad TTL {text!r}: use 3600, 30m, 8h or 2d")
    n, unit = int(m.group(1)), m.group(2) or "s"
    ttl = timedelta(seconds=n * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit])
    if not timedelta(minutes=1) <= ttl <= MAX_TTL:
        raise argparse.ArgumentTypeError("TTL must be between 1m and 7d")
    return ttl


def issue_staff_token(settings: IntakeSettings, argv: list[str]) -> int:
    """Mint a staff JWT signed with the first STAFF_TOKEN_KEYS key (until the city IdP issues them).

    The token goes to stdout alone (pipe it); what it grants and until when goes to stderr.
    """
    parser = argparse.ArgumentParser(prog="python -m intake issue-staff-token")
    parser.add_argument("--tenant", required=True, help="6-digit tenant (行政区划) code")
    parser.add_argument("--role", required=True, choices=get_args(StaffRole))
    parser.add_argument("--unit", default=None, help="unit code; required for unit and grid_staff")
    parser.add_argument("--ttl", type=parse_ttl, default=timedelta(hours=8), help="3600, 30m, 8h, 2d (max 7d)")
    parser.add_argument("--sub", default=None, help="staff id recorded as the actor (default: cli:<role>:<unit>)")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"\d{6}", args.tenant):
        parser.error("--tenant must be a 6-digit code")
    if args.role in UNIT_ROLES and not args.unit:
        parser.error(f"--unit is required for role {args.role}")
    if args.role not in UNIT_ROLES and args.unit:
        parser.error(f"--unit is only for unit and grid_staff (role {args.role} is not a unit's)")
    if settings.staff_token_keys is None:
        print("STAFF_TOKEN_KEYS is not set: no key to sign with", file=sys.stderr)
        return 2
    tokens = StaffTokens(settings.staff_token_keys.get_secret_value(), ttl=args.ttl)
    now = datetime.now(UTC)
    sub = args.sub or f"cli:{args.role}:{args.unit or args.tenant}"
    token = tokens.issue(sub=sub, tenant=args.tenant, role=args.role, unit=args.unit, now=now)
    print(token)
    print(
        f"staff token for {sub}: tenant {args.tenant}, role {args.role}"
        + (f", unit {args.unit}" if args.unit else "")
        + f"; expires {(now + args.ttl).isoformat(timespec='seconds')}",
        file=sys.stderr,
    )
    return 0
