"""Run one service process: uvicorn for HTTP plus the background loops its roles ask for.

SIGTERM/SIGINT → uvicorn stops accepting requests → the lifespan's shutdown stops consumers (which
finish the message in hand and commit its offset), the relay, the producer and the engine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import uvicorn
from fastapi import FastAPI

log = logging.getLogger(__name__)


class BackgroundTasks:
    """Long-running loops owned by a process; a loop that dies takes readiness down with it."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stops: list[Callable[[], Awaitable[None]]] = []

    def start(self, name: str, loop: Coroutine[Any, Any, None], stop: Callable[[], Awaitable[None]]) -> None:
        self._tasks[name] = asyncio.create_task(loop, name=name)
        self._tasks[name].add_done_callback(self._on_done)
        self._stops.append(stop)

    def _on_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("background loop %s died", task.get_name(), exc_info=task.exception())

    async def check(self) -> None:
        for name, task in self._tasks.items():
            if task.done():
                raise RuntimeError(f"{name} is not running")

    async def stop(self, grace_s: float) -> None:
        for stop in reversed(self._stops):
            try:
                await asyncio.wait_for(stop(), timeout=grace_s)
            except Exception:
                log.exception("error while stopping a background loop")
        for task in self._tasks.values():
            if not task.done():
                task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)


def serve(app: FastAPI, host: str, port: int, grace_s: float) -> None:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        loop="uvloop",
        timeout_graceful_shutdown=int(grace_s),
        lifespan="on",
    )
    uvicorn.Server(config).run()
