"""How a room plugs itself into the application: what it sets up when the app is built, its
routes, its middleware, the steps it takes at start-up (and undoes at shut-down), and the
modules that declare its jobs.

Each room has a `room.py` with `ROOM = Room(...)`; `patone.app` lists the rooms once and walks
them: routes and middleware in that order, start-up steps in that order with their undoing in
reverse (an `AsyncExitStack`). The worker imports every room's `actors`, so a job, an event
handler or a periodic job runs because its room names its module, not because some other
module happened to import it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from patone.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Assembly:
    """What the rooms are put together with, and what their start-up steps leave for the rooms
    after them (`state`: the broker, the running embedded services...)."""

    settings: Settings
    secret: str
    # Where the plugins' HTTP routes send providers' delivery reports (the notifications room).
    delivery_reports: Callable[..., Awaitable[bool]] | None = None
    state: dict[str, Any] = field(default_factory=dict)


Steps = Callable[[Assembly, Starlette], AbstractAsyncContextManager[None]]


@dataclass(frozen=True)
class Room:
    name: str
    configure: Callable[[Assembly], None] | None = None  # when the app is built
    routes: Callable[[Assembly], Sequence[BaseRoute]] | None = None
    middleware: Callable[[Assembly], Sequence[Middleware]] | None = None
    start: Steps | None = None
    actors: Sequence[str] = ()  # modules that declare jobs, event handlers, periodic jobs


def background(name: str, task: asyncio.Task[None]) -> AbstractAsyncContextManager[None]:
    """A shut-down step that cancels a task the room started (and waits for it to end)."""

    async def cancel() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return step(name, cancel)


@asynccontextmanager
async def step(name: str, undo: Callable[[], Awaitable[object]]) -> AsyncIterator[None]:
    """A shut-down step that is logged and passed over when it fails, so the steps after it
    still run (a lost Redis connection must not leave the database pools open)."""
    try:
        yield
    finally:
        try:
            await undo()
        except Exception:
            log.exception("shutdown step failed", extra={"step": name})
