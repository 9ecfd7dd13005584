"""What every request model and path parameter shares: strict, and no NUL characters.

PostgreSQL text cannot hold U+0000; letting one through would fail at the database (a 5xx) instead
of being answered as bad input (422).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, ConfigDict, model_validator

TenantPath = Annotated[str, Path(pattern=r"^\d{6}$", description="GB/T 2260 行政区划代码（6 位）")]
RefPath = Annotated[
    str, Path(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z-]+$", description="工单 id 或工单编号")
]


def _has_nul(v: Any) -> bool:
    if isinstance(v, str):
        return "\x00" in v
    if isinstance(v, dict):
        return any(_has_nul(k) or _has_nul(x) for k, x in v.items())
    if isinstance(v, list | tuple):
        return any(_has_nul(x) for x in v)
    return False


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        if _has_nul(data):
            raise ValueError("文本不能包含空字符（\\u0000）")
        return data
