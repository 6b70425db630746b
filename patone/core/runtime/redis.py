"""The Redis clients and the tenant key namespace.

Every key a tenant owns starts with `t:<slug>:`, so purging a tenant can find them all; the
platform sets that list tenants by slug (`TENANT_SETS`) lose the slug at the same time.

Each event loop has two pools of connections, sized on purpose:

- commands (`get_redis`): `POOL_SIZE` connections. A command holds one for a single round trip
  (well under a millisecond here), so even 300 GraphQL requests at once used 24; 32 leaves room
  for bursts and slow commands while keeping processes x loops x 32 far below Redis's 10,000
  clients. When all are busy a command waits up to `POOL_WAIT` seconds for one instead of
  failing; if none comes free it raises `RedisBusy`, which the web layer answers with 503 and
  `Retry-After` (and logs once, as our fault).
- subscriptions (`subscriber`): a pub/sub subscriber holds its connection for as long as it
  listens (a live GraphQL subscription, a tracking page, a position stream), so subscribers
  get a pool of their own (`SUBSCRIBERS` per loop). Sharing the command pool let one company's
  open sockets take every connection and fail other companies' requests.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError

from patone.core.runtime.errors import Unavailable

POOL_SIZE = 32
POOL_WAIT = 2.0
RETRY_AFTER = 2
SUBSCRIBERS = 1000


class RedisBusy(Unavailable, RedisConnectionError):
    """No Redis connection came free within `POOL_WAIT` seconds."""

    def __init__(self) -> None:
        super().__init__("The service is busy; try again in a moment.", RETRY_AFTER)


class _CommandPool(aioredis.BlockingConnectionPool):
    """redis-py's blocking pool, whose time-out says `RedisBusy` (a plain ConnectionError
    could not be told from Redis being down)."""

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().get_connection(*args, **kwargs)
        except RedisConnectionError as error:
            if isinstance(error.__cause__, TimeoutError):  # the wait ran out
                raise RedisBusy() from error
            raise


# A redis.asyncio client belongs to the event loop it was first used on. The web app's loop and
# an in-process worker's loop (Dramatiq's) each get their own, made on first use from the URL
# given to `connect_redis`.
_url: str | None = None
_clients: dict[asyncio.AbstractEventLoop | None, aioredis.Redis] = {}
_subscribers: dict[asyncio.AbstractEventLoop | None, aioredis.Redis] = {}


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
    pool = _CommandPool.from_url(
        url,
        max_connections=POOL_SIZE,
        timeout=POOL_WAIT,
        decode_responses=True,
        health_check_interval=30,
    )
    return aioredis.Redis.from_pool(pool)


def _new_subscriber(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        url, max_connections=SUBSCRIBERS, decode_responses=True, health_check_interval=30
    )


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
    _subscribers.clear()
    _url = None


async def close_loop_redis() -> None:
    """Close the clients of the running loop (a worker's, as it shuts down)."""
    for clients in (_clients, _subscribers):
        client = clients.pop(_running_loop(), None)
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


def subscriber() -> PubSub:
    """A pub/sub subscriber of the running loop, on a connection of its own (outside the
    command pool); close it with `aclose()`."""
    loop = _running_loop()
    client = _subscribers.get(loop)
    if client is None:
        if _url is None:
            raise RuntimeError("Redis is not connected")
        client = _subscribers[loop] = _new_subscriber(_url)
    return client.pubsub()


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
