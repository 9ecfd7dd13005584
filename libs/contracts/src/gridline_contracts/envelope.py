"""The one envelope every Kafka message travels in: CloudEvents 1.0, Kafka binary content mode.

Attributes go in ``ce_*`` headers so consumers can route and deduplicate without parsing the body;
the body is the event's ``data`` as JSON. ``(source, id)`` identifies a message for deduplication.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

SPECVERSION = "1.0"
TYPE_PREFIX = "cn.gridline."

# CloudEvents Kafka binding header names; extension attributes are lower-case alphanumerics.
H_SPECVERSION = "ce_specversion"
H_ID = "ce_id"
H_TYPE = "ce_type"
H_SOURCE = "ce_source"
H_TIME = "ce_time"
H_SUBJECT = "ce_subject"
H_TENANT = "ce_tenant"
H_CORRELATION = "ce_correlationid"
H_CAUSATION = "ce_causationid"
H_CONTENT_TYPE = "content-type"
CONTENT_TYPE = "application/json"


class EventData(BaseModel):
    """Base of every event payload.

    ``TYPE`` and ``VERSION`` are the wire identity; they never derive from the class name, so a class
    can be renamed freely. A breaking change is a new class with ``VERSION + 1``. Readers are
    tolerant (``extra="ignore"``) so additive changes need no new version.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    TYPE: ClassVar[str]
    VERSION: ClassVar[int]

    @classmethod
    def ce_type(cls) -> str:
        return f"{TYPE_PREFIX}{cls.TYPE}.v{cls.VERSION}"


D = TypeVar("D", bound=EventData)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Envelope(BaseModel, Generic[D]):
    model_config = ConfigDict(frozen=True)

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    source: str
    tenant: str
    subject: str  # the aggregate id (ticket id); also the Kafka key, so one ticket stays ordered
    time: datetime = Field(default_factory=utcnow)
    correlation_id: str
    causation_id: str | None = None
    data: D

    @property
    def type(self) -> str:
        return type(self.data).TYPE

    @property
    def version(self) -> int:
        return type(self.data).VERSION

    @property
    def ce_type(self) -> str:
        return type(self.data).ce_type()

    def headers(self) -> list[tuple[str, bytes]]:
        h = [
            (H_SPECVERSION, SPECVERSION),
            (H_ID, str(self.id)),
            (H_TYPE, self.ce_type),
            (H_SOURCE, self.source),
            (H_TIME, self.time.isoformat()),
            (H_SUBJECT, self.subject),
            (H_TENANT, self.tenant),
            (H_CORRELATION, self.correlation_id),
            (H_CONTENT_TYPE, CONTENT_TYPE),
        ]
        if self.causation_id:
            h.append((H_CAUSATION, self.causation_id))
        return [(k, v.encode()) for k, v in h]

    def body(self) -> bytes:
        return self.data.model_dump_json().encode()

    def caused(self, data: EventData, *, source: str, subject: str | None = None) -> Envelope[Any]:
        """A follow-up event: same tenant and correlation, causation = this message."""
        return Envelope[Any](
            source=source,
            tenant=self.tenant,
            subject=subject or self.subject,
            correlation_id=self.correlation_id,
            causation_id=str(self.id),
            data=data,
        )
