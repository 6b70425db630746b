"""The registry cache: look-ups are cached, and changes reach every process at once."""

from __future__ import annotations

import asyncio
import contextlib

from patone.platform import provisioning
from patone.tenants.registry import TenantCache, follow_changes, list_tenants
from tests.conftest import MakeTenant


async def test_a_suspension_reaches_another_process_cache_before_its_ttl(
    make_tenant: MakeTenant,
) -> None:
    tenant = await make_tenant("cache", domains=["cache-me.example.test"])
    other_process = TenantCache(ttl=3600)  # would hold a stale answer for an hour
    ready = asyncio.Event()
    follower = asyncio.create_task(follow_changes(other_process, ready))
    try:
        await asyncio.wait_for(ready.wait(), 5)
        by_slug = await other_process.by_slug(tenant.slug)
        by_domain = await other_process.by_domain("cache-me.example.test")
        assert by_slug is not None and by_slug.status == "active"
        assert by_domain is not None and by_domain.slug == tenant.slug
        await provisioning.suspend_tenant(tenant.slug, "fraud check")
        for _ in range(100):
            cached = await other_process.by_slug(tenant.slug)
            if cached is not None and cached.status == "suspended":
                break
            await asyncio.sleep(0.01)
        assert cached is not None and cached.status_reason == "fraud check"
        by_domain = await other_process.by_domain("cache-me.example.test")
        assert by_domain is not None and by_domain.status == "suspended"
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower


async def test_unknown_names_are_cached_as_unknown_too(make_tenant: MakeTenant) -> None:
    cache = TenantCache(ttl=3600)
    assert await cache.by_slug("ttnobody-here") is None
    assert await cache.by_domain("nobody.example.test") is None
    cache.invalidate()
    assert await cache.by_slug("ttnobody-here") is None


async def test_list_filters_by_status(make_tenant: MakeTenant) -> None:
    active = await make_tenant("lista")
    gone = await make_tenant("listd")
    await provisioning.delete_tenant(gone.slug)
    deleted = {t.slug for t in await list_tenants("deleted")}
    actives = {t.slug for t in await list_tenants("active")}
    assert gone.slug in deleted and gone.slug not in actives
    assert active.slug in actives


async def test_the_cache_stays_bounded(make_tenant: MakeTenant) -> None:
    tenants = [await make_tenant("lru") for _ in range(3)]
    cache = TenantCache(ttl=3600, size=2)
    for tenant in tenants:
        assert (await cache.by_slug(tenant.slug)) is not None
    for i in range(10):
        assert await cache.by_domain(f"scanner-{i}.example.test") is None
    assert len(cache) == 4  # two slugs, two domains: the oldest were dropped
    # The most recently used slug is still cached; the first one was evicted and is re-read.
    assert (await cache.by_slug(tenants[-1].slug)) is not None
