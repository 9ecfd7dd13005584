"""(type, version) → payload class, and decoding of wire messages into envelopes."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from . import envelope as ce
from .envelope import Envelope, EventData

_CE_TYPE = re.compile(r"^" + re.escape(ce.TYPE_PREFIX) + r"(?P<type>[a-z0-9_.]+)\.v(?P<version>\d+)$")


class Undecodable(Exception):
    """The message cannot be read: it goes to the dead-letter topic, never retried."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


_REGISTRY: dict[tuple[str, int], type[EventData]] = {}


def register(*classes: type[EventData]) -> None:
    for cls in classes:
        key = (cls.TYPE, cls.VERSION)
        existing = _REGISTRY.get(key)
        if existing is not None and existing is not cls:
            raise ValueError(f"{key} registered twice: {existing.__name__} and {cls.__name__}")
        _REGISTRY[key] = cls


def all_events() -> list[type[EventData]]:
    _load_all()
    return sorted(_REGISTRY.values(), key=lambda c: (c.TYPE, c.VERSION))


def lookup(type_: str, version: int) -> type[EventData] | None:
    _load_all()
    return _REGISTRY.get((type_, version))


def _load_all() -> None:
    # Importing the family modules registers their classes; cheap after the first call.
    from . import escalation, intake, notify, routing  # noqa: F401


def parse_ce_type(value: str) -> tuple[str, int]:
    m = _CE_TYPE.match(value)
    if not m:
        raise Undecodable("bad_type", f"ce_type {value!r} is not {ce.TYPE_PREFIX}<type>.v<n>")
    return m["type"], int(m["version"])


def headers_dict(headers: Sequence[tuple[str, bytes]] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in headers or ():
        try:
            out[k] = v.decode() if v is not None else ""
        except UnicodeDecodeError as exc:
            raise Undecodable("bad_header", f"header {k!r} is not UTF-8") from exc
    return out


def decode(
    headers: Sequence[tuple[str, bytes]] | None, value: bytes | None, accept: Iterable[type[EventData]] | None = None
) -> Envelope[Any] | None:
    """Decode a Kafka record. Returns None for a well-formed event type this consumer does not handle.

    Raises Undecodable for anything malformed: missing CloudEvents attributes, unknown type/version,
    a body that is not JSON or does not validate.
    """
    h = headers_dict(headers)
    for required in (ce.H_SPECVERSION, ce.H_ID, ce.H_TYPE, ce.H_SOURCE, ce.H_TENANT, ce.H_SUBJECT):
        if not h.get(required):
            raise Undecodable("missing_attribute", f"header {required} is missing")
    if h[ce.H_SPECVERSION] != ce.SPECVERSION:
        raise Undecodable("bad_specversion", f"specversion {h[ce.H_SPECVERSION]!r} is not 1.0")
    type_, version = parse_ce_type(h[ce.H_TYPE])
    cls = lookup(type_, version)
    if cls is None:
        raise Undecodable("unknown_type", f"no contract for {type_} v{version}")
    if accept is not None and cls not in set(accept):
        return None
    try:
        event_id = uuid.UUID(h[ce.H_ID])
    except ValueError as exc:
        raise Undecodable("bad_id", f"ce_id {h[ce.H_ID]!r} is not a UUID") from exc
    try:
        payload: Any = json.loads(value or b"")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Undecodable("bad_json", f"body is not JSON: {exc}") from exc
    try:
        data = cls.model_validate(payload)
        time = datetime.fromisoformat(h[ce.H_TIME]) if h.get(ce.H_TIME) else ce.utcnow()
    except (ValidationError, ValueError) as exc:
        raise Undecodable("invalid_payload", str(exc)[:2000]) from exc
    return Envelope[Any](
        id=event_id,
        source=h[ce.H_SOURCE],
        tenant=h[ce.H_TENANT],
        subject=h[ce.H_SUBJECT],
        time=time,
        correlation_id=h.get(ce.H_CORRELATION) or str(event_id),
        causation_id=h.get(ce.H_CAUSATION) or None,
        data=data,
    )
