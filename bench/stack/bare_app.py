"""Baseline: the cheapest FastAPI endpoint that does what intake's POST does at the HTTP edge
(validate a JSON body with pydantic, answer 201 with an id), under the same uvicorn settings as
the services (one process, uvloop, no access log). Run: python bare_app.py PORT."""

from __future__ import annotations

import sys
import uuid

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field


class Location(BaseModel):
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    crs: str = "gcj02"


class Report(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant: str
    category_code: str
    description: str
    location: Location | None = None
    phone: str | None = None


app = FastAPI()


@app.post("/v1/reports", status_code=201)
async def accept(body: Report) -> dict[str, str]:
    return {"ticket_id": str(uuid.uuid4()), "tenant": body.tenant}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None, access_log=False, loop="uvloop")
