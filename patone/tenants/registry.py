"""Reading the tenant registry, with a short per-process cache for request resolution."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
from redis.exceptions import RedisError

from patone.core.runtime.db import engine
from patone.core.runtime.redis import get_redis, purge_tenant_keys, subscriber

log = logging.getLogger(__name__)
V = TypeVar("V")

TENANT_COLUMNS = (
    "t.id, t.slug, t.name, t.schema_name, t.role_name, t.status, t.status_reason, t.plan, "
    "t.branding, t.shard, t.applied_migrations, t.created_at, t.deleted_at, t.purge_after"
)


@dataclass(frozen=True)
class TenantInfo:
    """A tenant as the rest of the code sees it (immutable; re-read to see changes)."""

    id: UUID
    slug: str
    name: str
    schema_name: str
    role_name: str
    status: str
    status_reason: str
    plan: str
    branding: dict[str, Any]
    shard: str
    applied_migrations: tuple[str, ...]
    created_at: datetime
    deleted_at: datetime | None = None
    purge_after: datetime | None = None
    domains: tuple[str, ...] = field(default_factory=tuple)

    @property
    def is_active(self) -> bool:
        return self.status == "active"

    @property
    def is_simulation(self) -> bool:
        """Made by `patone simulate` for one run: no other process's relay, scheduler or
        workers work for it (the simulator plays them itself, on simulated time)."""
        return self.status == "simulation"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "slug": self.slug,
            "name": self.name,
            "status": self.status,
            "status_reason": self.status_reason,
            "plan": self.plan,
            "shard": self.shard,
            "schema": self.schema_name,
            "domains": list(self.domains),
            "created_at": self.created_at.isoformat(),
            "deleted_at": self.deleted_at.isoformat() if self.deleted_at else None,
            "purge_after": self.purge_after.isoformat() if self.purge_after else None,
        }


_SELECT_TENANTS = f"""
    SELECT {TENANT_COLUMNS},
           COALESCE(array_agg(d.domain ORDER BY d.domain)
                    FILTER (WHERE d.domain IS NOT NULL), '{{}}') AS domains
    FROM platform.tenants t LEFT JOIN platform.tenant_domains d ON d.tenant = t.id
"""
_BY_SLUG = _SELECT_TENANTS + " WHERE t.slug = $1 GROUP BY t.id"
_BY_STATUS = (
    _SELECT_TENANTS + " WHERE ($1::varchar IS NULL OR t.status = $1) GROUP BY t.id ORDER BY t.slug"
)
_BY_DOMAIN = """
    SELECT t.slug FROM platform.tenant_domains d JOIN platform.tenants t ON t.id = d.tenant
    WHERE d.domain = $1
"""


def _info(row: asyncpg.Record | None) -> TenantInfo | None:
    if row is None:
        return None
    data = dict(row)
    domains = tuple(data.pop("domains"))
    data["applied_migrations"] = tuple(data["applied_migrations"] or ())
    if isinstance(data["branding"], str):
        data["branding"] = json.loads(data["branding"])
    return TenantInfo(**data, domains=domains)


async def get_tenant(slug: str) -> TenantInfo | None:
    """The tenant with this slug, whatever its status, read from the database."""
    rows = await engine.fetch(_BY_SLUG, slug)
    return _info(rows[0] if rows else None)


async def forget_orphan(slug: str) -> None:
    """Remove what a late writer left under a slug that names no company (one purged while
    work for it was under way): its keys and its place in the platform sets. Read from the
    database, not a cache, so a company just created under the slug keeps its keys."""
    if await get_tenant(slug) is None:
        await purge_tenant_keys(slug)


async def list_tenants(status: str | None = None) -> list[TenantInfo]:
    """Every tenant (or those with `status`), by slug."""
    return [info for row in await engine.fetch(_BY_STATUS, status) if (info := _info(row))]


class _Expiring(OrderedDict[str, tuple[float, V]]):
    """At most `size` entries, least recently used dropped first, each valid until a time."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def fresh(self, key: str, now: float) -> tuple[bool, V | None]:
        hit = self.get(key)
        if hit is None or hit[0] <= now:
            return False, None
        self.move_to_end(key)
        return True, hit[1]

    def keep(self, key: str, value: V, until: float) -> None:
        self[key] = (until, value)
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


class TenantCache:
    """Slug and domain look-ups for request resolution, kept `ttl` seconds per process.

    Bounded (`size` entries each, least recently used first out): a process serving 10,000
    tenants, or answering scanners' random Host headers, keeps its memory flat.
    """

    def __init__(self, ttl: float = 5.0, size: int = 2048) -> None:
        self.ttl = ttl
        self._slugs: _Expiring[TenantInfo | None] = _Expiring(size)
        self._domains: _Expiring[str | None] = _Expiring(size)

    async def by_slug(self, slug: str) -> TenantInfo | None:
        now = time.monotonic()
        found, tenant = self._slugs.fresh(slug, now)
        if found:
            return tenant
        tenant = await get_tenant(slug)
        self._slugs.keep(slug, tenant, now + self.ttl)
        return tenant

    async def by_domain(self, domain: str) -> TenantInfo | None:
        now = time.monotonic()
        found, slug = self._domains.fresh(domain, now)
        if not found:
            rows = await engine.fetch(_BY_DOMAIN, domain)
            slug = rows[0]["slug"] if rows else None
            self._domains.keep(domain, slug, now + self.ttl)
        return await self.by_slug(slug) if slug else None

    def __len__(self) -> int:
        return len(self._slugs) + len(self._domains)

    def invalidate(self, slug: str | None = None) -> None:
        if slug is None:
            self._slugs.clear()
            self._domains.clear()
            return
        self._slugs.pop(slug, None)
        for domain, (_, cached) in list(self._domains.items()):
            if cached == slug:
                self._domains.pop(domain, None)


tenant_cache = TenantCache()

# Registry changes (suspend, delete, domains ...) are announced here so every process drops its
# cached copy at once instead of waiting out the TTL.
CHANGES_CHANNEL = "platform:tenants:changed"


async def announce_change(slug: str) -> None:
    """Tell every process that `slug`'s registry row changed (best effort: the TTL remains)."""
    tenant_cache.invalidate(slug)
    try:
        await get_redis().publish(CHANGES_CHANNEL, slug)
    except (RedisError, RuntimeError) as error:
        log.warning("could not announce a tenant change", extra={"slug": slug, "error": str(error)})


async def follow_changes(cache: TenantCache, ready: asyncio.Event | None = None) -> None:
    """Invalidate `cache` whenever a registry change is announced; runs until cancelled.

    If Redis goes away it resubscribes with back-off, clearing the cache each time (changes
    announced while disconnected were missed).
    """
    delay = 0.5
    while True:
        pubsub = subscriber()
        try:
            await pubsub.subscribe(CHANGES_CHANNEL)
            if ready is not None:
                ready.set()
            delay = 0.5
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    cache.invalidate(str(message["data"]))
        except RedisError as error:
            log.warning("lost the tenant change feed; resubscribing", extra={"error": str(error)})
            cache.invalidate()
        finally:
            with contextlib.suppress(RedisError):
                await pubsub.aclose()
        await asyncio.sleep(delay)
        delay = min(delay * 2, 30.0)
