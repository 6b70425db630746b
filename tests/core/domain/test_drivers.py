"""Drivers: a driver who goes on duty alone reaches the dispatch engine and gets offers."""

from __future__ import annotations

import asyncio

import dramatiq

from patone.core.dispatch import jobs  # noqa: F401 (the engine hears the relay)
from patone.core.domain import drivers
from patone.core.runtime.db import engine
from patone.core.runtime.redis import get_redis
from patone.core.work.relay import relay_tenant
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo
from tests.core.dispatch.world import driver_actor, driver_at, request_at_scene


async def _open_offers(tenant: TenantInfo) -> list[tuple[int, int]]:
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "SELECT request_id, driver_id FROM offers WHERE status = 'open' ORDER BY id"
        )
    return [(row["request_id"], row["driver_id"]) for row in rows]


async def test_a_driver_who_goes_on_duty_alone_is_offered_the_waiting_job(
    two_tenants: tuple[TenantInfo, TenantInfo], broker: dramatiq.Broker
) -> None:
    acme, bolt = two_tenants
    driver = await driver_at(acme, 2, status="off_duty")
    neighbour = await driver_at(bolt, 1, status="off_duty")
    job = await request_at_scene(acme)
    await relay_tenant(acme, get_redis(), broker=broker)
    await asyncio.sleep(0.5)
    assert await _open_offers(acme) == []  # nobody on duty yet

    await drivers.set_own_status(acme, driver_actor(driver), "available")
    await relay_tenant(acme, get_redis(), broker=broker)  # as `patone serve` runs it

    for _ in range(200):
        if await _open_offers(acme):
            break
        await asyncio.sleep(0.05)
    assert await _open_offers(acme) == [(job.id, driver.id)]
    async with tenant_transaction(bolt):
        rows = await engine.fetch("SELECT status FROM drivers WHERE id = $1", neighbour.id)
    assert rows[0]["status"] == "off_duty"
