"""The Redis client and the tenant key namespace.

Every key a tenant owns starts with `t:<slug>:`, so purging a tenant can find them all.
"""

from __future__ import annotations

import redis.asyncio as aioredis

_client: aioredis.Redis | None = None


def tenant_key(slug: str, *parts: str) -> str:
    return ":".join(("t", slug, *parts))


async def connect_redis(url: str) -> aioredis.Redis:
    global _client
    await close_redis()
    _client = aioredis.Redis.from_url(url, decode_responses=True, health_check_interval=30)
    return _client


async def close_redis() -> None:
    global _client
    client, _client = _client, None
    if client is not None:
        await client.aclose()


def get_redis() -> aioredis.Redis:
    if _client is None:
        raise RuntimeError("Redis is not connected")
    return _client


async def purge_tenant_keys(slug: str) -> int:
    """Delete every key of the tenant; returns how many were removed."""
    client = get_redis()
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
