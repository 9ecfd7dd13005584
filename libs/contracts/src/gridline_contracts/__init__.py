"""Gridline event contracts: what crosses the wire. Schemas only: imports nothing but pydantic."""

from .envelope import Envelope, EventData
from .registry import Undecodable, decode

__all__ = ["Envelope", "EventData", "Undecodable", "decode"]
