"""The Redis client and the tenant key namespace.

Every key a tenant owns starts with `t:<slug>:`, so purging a tenant can find them all; the
platform sets that list tenants by slug (`TENANT_SETS`) lose the slug at the same time.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

# A redis.asyncio client belongs to the event loop it was first used on. The web app's loop and
# an in-process worker's loop (Dramatiq's) each get their own, made on first use from the URL
# given to `connect_redis`.
_url: str | None = None
_clients: dict[asyncio.AbstractEventLoop | None, aioredis.Redis] = {}


# Platform sets of tenant slugs with work waiting (kept here so a purge knows them all).
DISPATCH_BUSY = "platform:dispatch:busy"  # companies with live offers or waiting requests
POSITIONS_PENDING = "platform:positions:pending"  # companies with positions to write
TENANT_SETS = (DISPATCH_BUSY, POSITIONS_PENDING)


def tenant_key(slug: str, *parts: str) -> str:
    return ":".join(("t", slug, *parts))


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _new(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(url, decode_responses=True, health_check_interval=30)


async def connect_redis(url: str) -> aioredis.Redis:
    """Use Redis at `url` from now on; returns this loop's client."""
    global _url
    await close_redis()
    _url = url
    return get_redis()


async def close_redis() -> None:
    """Close this loop's client and forget every client (other loops close theirs first with
    `close_loop_redis`)."""
    global _url
    await close_loop_redis()
    _clients.clear()
    _url = None


async def close_loop_redis() -> None:
    """Close the client of the running loop (a worker's, as it shuts down)."""
    client = _clients.pop(_running_loop(), None)
    if client is not None:
        await client.aclose()


def get_redis() -> aioredis.Redis:
    """The Redis client of the running event loop."""
    loop = _running_loop()
    client = _clients.get(loop)
    if client is None:
        if _url is None:
            raise RuntimeError("Redis is not connected")
        client = _clients[loop] = _new(_url)
    return client


async def purge_tenant_keys(slug: str) -> int:
    """Delete every key of the tenant, and its slug from the platform sets; returns how many
    keys were removed."""
    client = get_redis()
    for name in TENANT_SETS:
        await client.srem(name, slug)
    removed = 0
    batch: list[str] = []
    async for key in client.scan_iter(match=tenant_key(slug, "*"), count=1000):
        batch.append(key)
        if len(batch) >= 500:
            removed += await client.unlink(*batch)
            batch.clear()
    if batch:
        removed += await client.unlink(*batch)
    return removed
