"""The engine in real workers: an event queues a sweep, the sweep offers, the busy set follows."""

from __future__ import annotations

import asyncio

import dramatiq

from patone.core.db import engine
from patone.core.dispatch import jobs
from patone.core.jobs import broker_redis
from patone.core.redis import get_redis
from patone.core.relay import relay_tenant
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo
from tests.core.dispatch.world import driver_at, request_at_scene


async def _open_offers(tenant: TenantInfo) -> list[tuple[int, int]]:
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "SELECT request_id, driver_id FROM offers WHERE status = 'open' ORDER BY id"
        )
    return [(row["request_id"], row["driver_id"]) for row in rows]


async def _eventually(check, seconds: float = 10.0):  # type: ignore[no-untyped-def]
    for _ in range(int(seconds / 0.05)):
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.05)
    return await check()


async def test_a_new_emergency_is_offered_through_the_event_and_a_worker(
    two_tenants: tuple[TenantInfo, TenantInfo], broker: dramatiq.Broker
) -> None:
    acme, bolt = two_tenants
    driver = await driver_at(acme, 2)
    await driver_at(bolt, 1)
    emergency = await request_at_scene(acme, priority="emergency")

    await relay_tenant(acme, get_redis(), broker=broker)  # the relay, as `patone serve` runs it

    assert await _eventually(lambda: _open_offers(acme)) == [(emergency["id"], driver["id"])]
    client = broker_redis(broker)

    async def swept_every_second() -> bool:  # a live offer: the sweep marks the company busy
        return bool(client.sismember(jobs.BUSY_KEY, acme.slug))

    assert await _eventually(swept_every_second)
    assert await _open_offers(bolt) == []
    assert not client.sismember(jobs.BUSY_KEY, bolt.slug)


async def test_a_sweep_already_queued_is_not_queued_twice(
    two_tenants: tuple[TenantInfo, TenantInfo], broker: dramatiq.Broker
) -> None:
    acme, bolt = two_tenants
    client = broker_redis(broker)
    client.set(jobs._queued_key(acme.slug), "1", ex=jobs.QUEUED_SECONDS)  # one is waiting
    assert not await asyncio.to_thread(jobs.queue_sweep, broker, acme.slug)
    assert await asyncio.to_thread(jobs.queue_sweep, broker, bolt.slug)


def test_only_events_that_change_who_should_be_offered_wake_the_engine() -> None:
    assert jobs._wakes({"topic": "request.created", "payload": {"status": "pending"}})
    assert jobs._wakes({"topic": "request.status_changed", "payload": {"status": "pending"}})
    assert not jobs._wakes({"topic": "request.status_changed", "payload": {"status": "en_route"}})
    assert jobs._wakes({"topic": "driver.status_changed", "payload": {"to": "available"}})
    assert not jobs._wakes({"topic": "driver.status_changed", "payload": {"to": "on_break"}})
    assert jobs._wakes({"topic": "offer.declined", "payload": {}})
    assert not jobs._wakes({"topic": "customer.created", "payload": {}})
