"""A driver's plan: their stacked jobs in the order to drive them, emergencies first."""

from __future__ import annotations

import pytest

from patone.core.common.permissions import PermissionDenied
from patone.core.dispatch import plans
from patone.core.domain import service_requests
from patone.tenants.registry import TenantInfo
from tests.core.dispatch.world import (
    DISPATCHER,
    Clock,
    driver_actor,
    driver_at,
    east_of_scene,
    request_at_scene,
)


async def _stacked(tenant: TenantInfo, driver_id: int, km: float, priority: str = "normal") -> int:
    request = await request_at_scene(tenant, priority=priority)
    lat, lng = east_of_scene(km)
    await service_requests.update_request(
        tenant, DISPATCHER, request.id, {"pickup": {"lat": lat, "lng": lng}}
    )
    await service_requests.assign_driver(tenant, DISPATCHER, request.id, driver_id)
    return int(request.id)


async def test_stacked_jobs_are_driven_nearest_first_with_the_emergency_before_all(
    two_tenants: tuple[TenantInfo, TenantInfo], clock: Clock
) -> None:
    acme, bolt = two_tenants
    driver = await driver_at(acme, 0)
    other = await driver_at(bolt, 0)
    far = await _stacked(acme, driver.id, 9)
    near = await _stacked(acme, driver.id, 2)
    middle = await _stacked(acme, driver.id, 5)
    route = await plans.driver_route(acme, driver_actor(driver), driver.id)
    assert [s.request_id for s in route] == [near, middle, far]
    assert route[0].arrive_at < route[1].arrive_at < route[2].arrive_at
    emergency = await _stacked(acme, driver.id, 12, priority="emergency")
    route = await plans.driver_route(acme, DISPATCHER, driver.id)
    assert route[0].request_id == emergency
    assert await plans.driver_route(bolt, DISPATCHER, other.id) == []
    with pytest.raises(PermissionDenied):  # another driver's plan
        await plans.driver_route(acme, driver_actor({"id": driver.id + 1}), driver.id)
