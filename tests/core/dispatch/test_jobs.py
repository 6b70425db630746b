"""The engine in real workers: an event queues a sweep, the sweep offers, the busy set follows;
phones ring for offers and waiting places."""

from __future__ import annotations

import asyncio
from typing import Any

import dramatiq

from patone.core.common.permissions import SYSTEM
from patone.core.dispatch import autodispatch, fleet, jobs, offers, staging
from patone.core.domain import drivers, push, service_requests
from patone.core.identity import users
from patone.core.runtime.db import engine
from patone.core.runtime.redis import get_redis
from patone.core.runtime.scheduler import registered
from patone.core.work.jobs import broker_redis
from patone.core.work.relay import relay_tenant
from patone.platform import provisioning
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo
from tests.conftest import actor_for
from tests.core.dispatch.world import (
    DISPATCHER,
    Clock,
    calls_at_scene_before,
    driver_at,
    east_of_scene,
    request_at_scene,
)
from tests.plugins.builtin.webpush_service import (  # noqa: F401 (fixtures)
    PushService,
    push_runtime,
    push_service,
    push_tls,
)
from tests.support import running_worker


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

    assert await _eventually(lambda: _open_offers(acme)) == [(emergency.id, driver.id)]
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
    assert not await asyncio.to_thread(jobs.queue_sweep, broker, acme)
    assert await asyncio.to_thread(jobs.queue_sweep, broker, bolt)


def test_only_events_that_change_who_should_be_offered_wake_the_engine() -> None:
    assert jobs._wakes({"topic": "request.created", "payload": {"status": "pending"}})
    assert jobs._wakes({"topic": "request.status_changed", "payload": {"status": "pending"}})
    assert not jobs._wakes({"topic": "request.status_changed", "payload": {"status": "en_route"}})
    assert jobs._wakes({"topic": "driver.status_changed", "payload": {"to": "available"}})
    assert not jobs._wakes({"topic": "driver.status_changed", "payload": {"to": "on_break"}})
    assert jobs._wakes({"topic": "offer.declined", "payload": {}})
    assert not jobs._wakes({"topic": "customer.created", "payload": {}})


async def test_a_new_offer_rings_the_drivers_phone_once(
    two_tenants: tuple[TenantInfo, TenantInfo],
    push_runtime: Any,  # noqa: F811
    push_service: PushService,  # noqa: F811
) -> None:
    acme, bolt = two_tenants
    user = await users.create_user(
        acme, SYSTEM, {"email": "dan@acme.example", "name": "Dan", "role": "driver"}
    )
    driver = await drivers.create_driver(
        acme, SYSTEM, {"name": "Dan", "skills": ["tow"], "user_id": user.id}
    )
    lat, lng = east_of_scene(1)
    await fleet.set_position(acme, SYSTEM, driver.id, {"lat": lat, "lng": lng})
    await drivers.update_driver(acme, SYSTEM, driver.id, {"status": "available"})
    dan = actor_for("driver", user_id=user.id, driver_id=driver.id)
    phone = push_service.subscribe(await push.vapid_public_key(acme))
    await push.register_subscription(acme, dan, phone)
    await driver_at(bolt, 1)
    request = await request_at_scene(acme, priority="emergency")
    await request_at_scene(bolt)
    await autodispatch.sweep(acme)
    await autodispatch.sweep(bolt)
    [offer] = await offers.my_offers(acme, dan)

    async with running_worker():  # the broker's Redis keeps the claim
        assert await jobs.push_offer.run(acme.slug, offer.id) == 1
        assert await jobs.push_offer.run(acme.slug, offer.id) == 0  # once
        assert await jobs.push_offer.run(bolt.slug, offer.id) == 0  # bolt's: no login
    [rung] = push_service.received
    assert rung.payload["title"] == f"EMERGENCY: Jump start #{request.number}"
    assert rung.payload["tag"] == f"offer:{offer.id}"
    assert "answer within" in rung.payload["body"]


async def _plans(tenant: TenantInfo) -> list[int]:
    async with tenant_transaction(tenant):
        rows = await engine.fetch("SELECT jobs FROM fleet_plans")
    return [row["jobs"] for row in rows]


async def test_the_scheduled_replan_plans_in_a_worker_the_companies_with_jobs(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    assert registered()["dispatch.replan"].run is jobs.replan_all
    driver = await driver_at(acme, 2)
    await driver_at(bolt, 2)  # on shift, nothing to plan
    request = await request_at_scene(acme)
    await service_requests.assign_driver(acme, DISPATCHER, request.id, driver.id)

    async with running_worker():  # what `replan_all` queues for every active company
        jobs.replan_tenant.send(acme)
        assert await _eventually(lambda: _plans(acme), seconds=20) == [1]
    assert await jobs.replan_tenant(acme.slug) is None  # not due again for 5 minutes
    assert await jobs.replan_tenant(bolt.slug) is None  # nothing to plan
    assert await _plans(acme) == [1] and await _plans(bolt) == []


async def _staged_push(service: PushService) -> list[Any]:
    return [r for r in service.received if r.payload["tag"].startswith("staging:")]


async def test_a_new_waiting_place_rings_the_drivers_phone_once_through_the_relay(
    two_tenants: tuple[TenantInfo, TenantInfo],
    clock: Clock,
    push_runtime: Any,  # noqa: F811
    push_service: PushService,  # noqa: F811
) -> None:
    acme, bolt = two_tenants
    assert registered()["dispatch.stage"].run is jobs.stage_all
    await calls_at_scene_before(acme, staging.MIN_CALLS)
    await calls_at_scene_before(bolt, staging.MIN_CALLS)
    user = await users.create_user(
        acme, SYSTEM, {"email": "dan@acme.example", "name": "Dan", "role": "driver"}
    )
    driver = await drivers.create_driver(acme, SYSTEM, {"name": "Dan", "user_id": user.id})
    lat, lng = east_of_scene(8)
    await fleet.set_position(acme, SYSTEM, driver.id, {"lat": lat, "lng": lng})
    await drivers.update_driver(acme, SYSTEM, driver.id, {"status": "available"})
    dan = actor_for("driver", user_id=user.id, driver_id=driver.id)
    await push.register_subscription(
        acme, dan, push_service.subscribe(await push.vapid_public_key(acme))
    )
    await driver_at(bolt, 8)  # told in bolt: no login, no ring

    async with running_worker() as broker:
        assert await jobs.stage_tenant(acme.slug) == 1  # what `stage_all` queues
        assert await jobs.stage_tenant(bolt.slug) == 1
        assert await jobs.stage_tenant(acme.slug) is None  # not due again for minutes
        for tenant in two_tenants:
            await relay_tenant(tenant, get_redis(), broker=broker)
        assert len(await _eventually(lambda: _staged_push(push_service))) == 1
        [told] = await staging.staging_suggestions(acme, dan)
        assert told.suggested_at is not None
        at = told.suggested_at.isoformat()
        assert await jobs.push_staging.run(acme.slug, driver.id, at) == 0  # once
        # Bolt's driver of the same id, told at the same time: no login, and never Dan's phone.
        assert await jobs.push_staging.run(bolt.slug, driver.id, at) == 0
        await asyncio.sleep(0.5)  # bolt's own push job has had its time
    [rung] = await _staged_push(push_service)
    assert rung.payload["title"] == "Wait near Alexanderplatz 1"
    assert rung.payload["tag"] == f"staging:{driver.id}"
    assert rung.payload["body"].startswith("8.0 km from you")
    assert rung.payload["url"] == "/driver"


async def test_a_purged_company_leaves_the_busy_set_and_is_never_swept_again(
    two_tenants: tuple[TenantInfo, TenantInfo], broker: dramatiq.Broker
) -> None:
    gone, busy = two_tenants
    client = broker_redis(broker)
    client.sadd(jobs.BUSY_KEY, gone.slug, busy.slug)
    await provisioning.delete_tenant(gone.slug)
    await provisioning.purge_tenant(gone.slug, force=True)
    assert not client.sismember(jobs.BUSY_KEY, gone.slug)
    client.sadd(jobs.BUSY_KEY, gone.slug)  # a sweep that finished after the purge ...
    client.set(f"t:{gone.slug}:dispatch:queued", "1")  # ... and what it wrote
    await jobs.sweep_busy()
    assert not client.sismember(jobs.BUSY_KEY, gone.slug)
    assert client.sismember(jobs.BUSY_KEY, busy.slug)
    assert client.keys(f"t:{gone.slug}:*") == []
    client.srem(jobs.BUSY_KEY, busy.slug)
