"""The work room: every room's jobs, event handlers and periodic jobs declared (their modules
imported), the broker, the outbox relay, the scheduler, and, when `patone serve` runs
everything in one process (embedded Redis), a worker beside the web app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette

from patone.core.runtime.redis import get_redis
from patone.core.runtime.rooms import Assembly, Room, step
from patone.core.runtime.scheduler import Scheduler
from patone.core.work.jobs import configure_broker
from patone.core.work.relay import Relay
from patone.core.work.worker import import_actor_modules, start_in_process_worker
from patone.tenants.registry import tenant_cache


@asynccontextmanager
async def _start(assembly: Assembly, app: Starlette) -> AsyncIterator[None]:
    """`state["actors"]`: every room's actor modules (the app collects them)."""
    settings, running = assembly.settings, assembly.state["services"]
    import_actor_modules(assembly.state["actors"])
    broker = configure_broker(running.redis_url, broker_url=settings.broker_url)
    assembly.state["broker"] = broker
    relay = Relay(get_redis(), tenant_cache, broker=broker)
    scheduler = Scheduler(get_redis())
    stop_worker: Callable[..., None] | None = None

    def stop() -> None:
        if stop_worker is not None:
            stop_worker()

    async with step("relay", relay.stop):
        await relay.start()
        async with step("scheduler", scheduler.stop):
            scheduler.start()
            async with step("worker", lambda: asyncio.to_thread(stop)):
                if settings.embedded_redis:  # one command runs everything: jobs in-process too
                    stop_worker = await asyncio.to_thread(start_in_process_worker, broker)
                yield


ROOM = Room("work", start=_start, actors=("patone.core.work.events",))
