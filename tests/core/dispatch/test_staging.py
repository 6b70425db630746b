"""Staging: idle drivers are told to wait near where this hour's calls come from."""

from __future__ import annotations

from datetime import timedelta

from patone.core.db import engine
from patone.core.dispatch import staging
from patone.core.dispatch.settings import update_dispatch_settings
from patone.core.service_types import distance_km
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo
from tests.conftest import actor_for
from tests.core.dispatch.world import (
    DISPATCHER,
    MORNING,
    SCENE,
    Clock,
    driver_actor,
    driver_at,
    east_of_scene,
    request_at_scene,
)


def test_places_cover_every_cluster_of_calls() -> None:
    west = [east_of_scene(-10 + i * 0.01) for i in range(20)]
    east = [east_of_scene(10 + i * 0.01) for i in range(5)]
    sites = staging.k_median(west + east, 2)
    assert sorted(round(distance_km(*SCENE, *site)) for site in sites) == [10, 10]
    assert len(staging.k_median(west, 30)) == 30  # more drivers than calls: places repeat


async def _history(tenant: TenantInfo, calls: int) -> None:
    """`calls` past calls at the scene, at this hour of the day over the last days."""
    for n in range(calls):
        request = await request_at_scene(tenant)
        async with tenant_transaction(tenant):
            await engine.execute(
                "UPDATE service_requests SET created_at = $2, status = 'cancelled', "
                "cancel_reason = 'duplicate' WHERE id = $1",
                request["id"],
                MORNING - timedelta(days=1 + n % 20),
            )


async def test_an_idle_driver_far_from_this_hours_calls_is_told_where_to_wait(
    two_tenants: tuple[TenantInfo, TenantInfo], clock: Clock
) -> None:
    acme, bolt = two_tenants
    await _history(acme, staging.MIN_CALLS)
    far = await driver_at(acme, 8)
    near = await driver_at(acme, 0.5)
    bolt_driver = await driver_at(bolt, 8)  # bolt has no history: nothing to suggest

    moves = await staging.staging_suggestions(acme, DISPATCHER)
    assert [m.driver_id for m in moves] == [far["id"]]  # the near one stays put
    assert distance_km(*SCENE, moves[0].lat, moves[0].lng) < 0.1
    assert 7.5 < moves[0].km < 8.5
    assert await staging.staging_suggestions(acme, driver_actor(near)) == []
    assert [m.driver_id for m in await staging.staging_suggestions(acme, driver_actor(far))] == [
        far["id"]
    ]
    assert await staging.staging_suggestions(bolt, DISPATCHER) == []
    assert await staging.staging_suggestions(bolt, driver_actor(bolt_driver)) == []
    await update_dispatch_settings(acme, actor_for("admin"), {"staging": False})
    assert await staging.staging_suggestions(acme, DISPATCHER) == []
