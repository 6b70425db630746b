"""The outbox relay: publish committed domain events to Redis pub/sub, at least once.

`activity.emit` writes an event into the tenant's `outbox` and sends `NOTIFY patone_outbox,
'<slug>'` in the same transaction; Postgres delivers the notification only if the transaction
commits. The relay listens for those notifications (and sweeps every tenant when it starts, for
events committed while it was down), publishes each tenant's unpublished events in order to the
channel `t:<slug>:events`, and marks them published in the same transaction that locked them.
If Redis is down the transaction rolls back and the events stay for the next try; if the
process dies after publishing but before committing, the event is published again, so
subscribers de-duplicate by event id. With a broker, the relay also queues one `fan_out` job
per event (`patone.core.work.events`). A simulation's company (`TenantInfo.is_simulation`) is left
to the simulator that made it, which plays the relay's and the workers' part itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import asyncpg
import dramatiq
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from patone.core.runtime.db import engine
from patone.core.runtime.redis import tenant_key
from patone.core.work.events import enqueue_fan_out
from patone.tenants.isolation import TenantRef, tenant_transaction
from patone.tenants.registry import TenantCache, list_tenants

log = logging.getLogger(__name__)

CHANNEL = "patone_outbox"
BATCH = 200


def events_channel(slug: str) -> str:
    return tenant_key(slug, "events")


async def relay_tenant(
    tenant: TenantRef,
    redis: aioredis.Redis,
    *,
    batch: int = BATCH,
    broker: dramatiq.Broker | None = None,
) -> int:
    """Publish the tenant's unpublished events, oldest first; returns how many.

    With a `broker`, each event also becomes a `fan_out` job (see `patone.core.work.events`):
    queued before the commit, so a crash in between queues it again under the same message id,
    and every handler it runs is idempotent.
    """
    published = 0
    while True:
        async with tenant_transaction(tenant):
            rows = await engine.fetch(
                "SELECT id, topic, entity, entity_id, payload, created_at FROM outbox "
                "WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                batch,
            )
            if not rows:
                return published
            channel = events_channel(tenant.slug)
            messages = [
                {
                    "id": row["id"],
                    "topic": row["topic"],
                    "entity": row["entity"],
                    "entity_id": row["entity_id"],
                    "payload": json.loads(row["payload"]),
                    "created_at": row["created_at"].isoformat(),
                }
                for row in rows
            ]
            async with redis.pipeline(transaction=False) as pipe:
                for message in messages:
                    pipe.publish(channel, json.dumps(message, default=str))
                await pipe.execute()
            if broker is not None:
                await asyncio.to_thread(enqueue_fan_out, broker, tenant, messages)
            await engine.execute(
                "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])",
                [row["id"] for row in rows],
            )
        published += len(rows)
        if len(rows) < batch:
            return published


class Relay:
    """Runs in the app (or a worker): LISTEN for committed events and relay them."""

    def __init__(
        self, redis: aioredis.Redis, cache: TenantCache, broker: dramatiq.Broker | None = None
    ) -> None:
        self.redis = redis
        self.cache = cache
        self.broker = broker
        self._pending: asyncio.Queue[str] = asyncio.Queue()
        self._connection: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None

    def _notified(self, _conn: Any, _pid: int, _channel: str, slug: str) -> None:
        self._pending.put_nowait(slug)

    async def start(self) -> None:
        self._connection = await asyncpg.connect(**engine.connection_options(engine.dsn()))
        await self._connection.add_listener(CHANNEL, self._notified)
        for tenant in await list_tenants("active"):
            self._pending.put_nowait(tenant.slug)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            slug = await self._pending.get()
            pending = {slug}
            while not self._pending.empty():
                pending.add(self._pending.get_nowait())
            for each in sorted(pending):
                tenant = await self.cache.by_slug(each)
                # A simulation's events are the simulator's to play, on its own clock: relayed
                # here they became jobs on this process's workers, against the real clock.
                if tenant is None or tenant.is_simulation:
                    continue
                try:
                    await relay_tenant(tenant, self.redis, broker=self.broker)
                except (RedisError, OSError) as error:  # Redis away: retry until it is back
                    log.warning("relay waits for Redis: %s", error, extra={"tenant": each})
                    asyncio.get_running_loop().call_later(1.0, self._pending.put_nowait, each)
                except Exception:  # keep relaying other tenants; retry this one shortly
                    log.exception("relay failed", extra={"tenant": each})
                    asyncio.get_running_loop().call_later(1.0, self._pending.put_nowait, each)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._connection is not None:
            await self._connection.close()
