"""The tenants room: the platform schema brought up to date, the company registry kept current
(the follower listens for companies created, suspended or deleted elsewhere), and the pool of
spare schemas kept topped up (`TENANT_SPARES`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette

from patone.core.runtime.rooms import Assembly, Room, background
from patone.tenants.migrations import ensure_platform
from patone.tenants.registry import follow_changes, tenant_cache
from patone.tenants.spares import keep_topped_up


@asynccontextmanager
async def _start(assembly: Assembly, app: Starlette) -> AsyncIterator[None]:
    await ensure_platform()
    tenant_cache.ttl = assembly.settings.tenant_cache_ttl
    ready = asyncio.Event()
    follower = asyncio.create_task(follow_changes(tenant_cache, ready))
    async with background("follower", follower):
        await asyncio.wait_for(ready.wait(), 5)
        if not assembly.settings.tenant_spares:
            yield
            return
        refill = asyncio.create_task(keep_topped_up(assembly.settings.tenant_spares))
        async with background("spares", refill):
            yield


ROOM = Room("tenants", start=_start)
