"""A customer watching their request: the truck's position only while it comes, ETA and status
as they change, the end of the job ending the watch, and nobody else's requests or pings."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Any

import pytest

from patone.core.common.permissions import SYSTEM, Actor
from patone.core.dispatch import positions, tracking
from patone.core.dispatch.tracking import Tracking
from patone.core.domain import service_requests
from patone.core.runtime.errors import NotFound
from patone.core.runtime.redis import get_redis
from patone.core.work.relay import events_channel, relay_tenant
from patone.tenants.registry import TenantInfo
from tests.conftest import actor_for
from tests.core.dispatch.world import DISPATCHER, driver_actor, driver_at, request_at_scene


def customer_of(request: dict[str, Any]) -> Actor:
    return Actor(kind="customer", id=str(request.customer))


def ping(lat: float) -> dict[str, Any]:
    """A fix taken now (older ones than the driver's last are ignored as out of order)."""
    at = datetime.now(UTC).isoformat()
    return {"lat": lat, "lng": 13.4, "accuracy_m": 5.0, "recorded_at": at}


class Watch:
    """A tracking stream read by a task of its own into a queue."""

    def __init__(self, stream: AsyncGenerator[Tracking, None]) -> None:
        self.stream = stream
        self.seen: asyncio.Queue[Tracking] = asyncio.Queue()
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for shown in self.stream:
            await self.seen.put(shown)

    async def next(self, timeout: float = 5.0) -> Tracking:
        return await asyncio.wait_for(self.seen.get(), timeout)

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def _subscribed(tenant: TenantInfo, actor: Actor, request_id: int) -> Watch:
    watch = Watch(tracking.track_request(tenant, actor, request_id))
    first = await watch.next()
    channel = events_channel(tenant.slug)
    for _ in range(200):  # the first snapshot comes after the subscription, but make sure
        if dict(await get_redis().pubsub_numsub(channel)).get(channel, 0) > 0:
            break
        await asyncio.sleep(0.01)
    watch.seen.put_nowait(first)
    return watch


async def _published(*tenants: TenantInfo) -> None:
    for tenant in tenants:
        await relay_tenant(tenant, get_redis())


async def test_the_customer_sees_the_truck_only_while_it_comes_and_the_watch_ends_with_the_job(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    driver = await driver_at(acme, 2, name="Ray")
    twin = await driver_at(bolt, 2, name="Bolt's Ray")  # the same driver id in the other company
    assert twin.id == driver.id
    request = await request_at_scene(acme)
    await service_requests.assign_driver(acme, DISPATCHER, request.id, driver.id)
    await positions.record_pings(acme, driver_actor(driver), [ping(52.50)])
    await _published(acme)

    watch = await _subscribed(acme, customer_of(request), request.id)
    try:
        await _follow_the_job(acme, bolt, watch, request, driver, twin)
    finally:
        await watch.close()


async def _follow_the_job(
    acme: TenantInfo,
    bolt: TenantInfo,
    watch: Watch,
    request: dict[str, Any],
    driver: dict[str, Any],
    twin: dict[str, Any],
) -> None:
    assigned = await watch.next()
    assert assigned.status == "assigned" and assigned.driver_name == "Ray"
    assert assigned.position is None  # not on the way yet: where the driver is stays private

    await service_requests.transition(acme, driver_actor(driver), request.id, "en_route")
    await _published(acme)
    coming = await watch.next()
    assert coming.status == "en_route" and coming.position is not None
    assert coming.position.lat == pytest.approx(52.50)

    # Bolt's driver with the same id pings: nothing reaches Acme's customer. Ray pings: it does.
    await positions.record_pings(bolt, driver_actor(twin), [ping(48.0)])
    await positions.record_pings(acme, driver_actor(driver), [ping(52.51)])
    moved = await watch.next()
    assert moved.position is not None and moved.position.lat == pytest.approx(52.51)

    for status in ("on_scene", "in_progress", "completed"):
        await service_requests.transition(acme, driver_actor(driver), request.id, status)
        await _published(acme)
        shown = await watch.next()
        assert shown.status == status
        assert (shown.position is not None) == (status == "on_scene")
    await asyncio.wait_for(watch.task, 5)  # the watch ended with the job
    assert watch.seen.empty()


async def test_only_the_customer_the_driver_and_dispatchers_may_watch(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    driver = await driver_at(acme, 2)
    other = await driver_at(acme, 4)
    request = await request_at_scene(acme)
    elsewhere = await request_at_scene(bolt)
    await service_requests.assign_driver(acme, DISPATCHER, request.id, driver.id)
    someone_else = Actor(kind="customer", id=str(request.customer + 1000))
    for actor in (someone_else, driver_actor(other), actor_for("driver", user_id=7)):
        with pytest.raises(NotFound):
            await anext(tracking.track_request(acme, actor, request.id))
    # Bolt's customer with the same id as Acme's is nobody at Acme, and the other way round.
    with pytest.raises(NotFound):
        await anext(tracking.track_request(acme, customer_of(elsewhere), elsewhere.id + 1000))
    for actor in (customer_of(request), driver_actor(driver), DISPATCHER):
        stream = tracking.track_request(acme, actor, request.id)
        shown = await anext(stream)
        await stream.aclose()
        assert shown.request_id == request.id and shown.status == "assigned"


async def test_a_finished_request_is_shown_once_and_the_watch_ends(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, _bolt = two_tenants
    request = await request_at_scene(acme)
    await service_requests.transition(
        acme, SYSTEM, request.id, "cancelled", reason_code="duplicate"
    )
    shown = [s async for s in tracking.track_request(acme, customer_of(request), request.id)]
    assert [s.status for s in shown] == ["cancelled"] and shown[0].position is None


async def test_an_event_published_after_the_first_read_or_twice_is_not_shown_again(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    driver = await driver_at(acme, 2, name="Ray")
    request = await request_at_scene(acme)
    await service_requests.assign_driver(acme, DISPATCHER, request.id, driver.id)
    watch = await _subscribed(acme, customer_of(request), request.id)
    try:
        assert (await watch.next()).status == "assigned"
        # The relay publishes the assignment only now (it runs a moment after the commit), and
        # publishes at least once: the page already shows it, so nothing new is shown.
        await _published(acme)
        channel = events_channel(acme.slug)
        message = {"topic": "request.assigned", "entity_id": str(request.id)}
        await get_redis().publish(channel, json.dumps(message))
        await service_requests.transition(acme, driver_actor(driver), request.id, "en_route")
        await _published(acme, bolt)
        assert (await watch.next()).status == "en_route"
        await asyncio.sleep(0.2)
        assert watch.seen.empty()
    finally:
        await watch.close()
