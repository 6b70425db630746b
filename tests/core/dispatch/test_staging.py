"""Staging: idle drivers are told to wait near where this hour's calls come from."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from patone.core import service_requests
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


async def _calls_east(tenant: TenantInfo, busy: int, quiet: int) -> None:
    """Earlier calls at this hour: `busy` at the scene, `quiet` 3 km east of it."""
    await _history(tenant, busy + quiet)
    east = east_of_scene(3)
    async with tenant_transaction(tenant):
        await engine.execute(
            "UPDATE service_requests SET pickup_lat = $1, pickup_lng = $2 WHERE id IN "
            "(SELECT id FROM service_requests ORDER BY id DESC LIMIT $3)",
            *east,
            quiet,
        )


async def _done_today(tenant: TenantInfo, driver: dict[str, Any], jobs: int) -> None:
    for _ in range(jobs):
        request = await request_at_scene(tenant)
        await service_requests.assign_driver(tenant, DISPATCHER, request["id"], driver["id"])
        for status in ("en_route", "on_scene", "in_progress", "completed"):
            await service_requests.transition(tenant, driver_actor(driver), request["id"], status)


async def test_the_busiest_place_goes_to_the_driver_who_is_behind(
    two_tenants: tuple[TenantInfo, TenantInfo], clock: Clock
) -> None:
    acme, bolt = two_tenants
    for tenant in (acme, bolt):
        await _calls_east(tenant, busy=25, quiet=6)
    ahead, behind = await driver_at(acme, 0), await driver_at(acme, 3)
    await _done_today(acme, ahead, 2)  # two jobs today, the other none
    await driver_at(bolt, 0)
    await driver_at(bolt, 3)

    moves = {m.driver_id: m for m in await staging.staging_suggestions(acme, DISPATCHER)}
    # Left where they are, the one ahead would take the town's calls and the other the few
    # from the east: they swap.
    assert set(moves) == {ahead["id"], behind["id"]}
    assert distance_km(*SCENE, moves[behind["id"]].lat, moves[behind["id"]].lng) < 0.1
    assert distance_km(*east_of_scene(3), moves[ahead["id"]].lat, moves[ahead["id"]].lng) < 0.1
    # Bolt's drivers at the same places, with no work done by either, stay put.
    assert await staging.staging_suggestions(bolt, DISPATCHER) == []


def test_each_place_is_weighed_by_its_share_of_the_calls() -> None:
    busy, quiet = [SCENE] * 30, [east_of_scene(5)] * 10
    assert staging.call_weights(busy + quiet, [SCENE, east_of_scene(5)]) == [1.5, 0.5]
    # A place given twice (more drivers than places) shares its calls.
    assert staging.call_weights(busy, [SCENE, SCENE]) == [1.0, 1.0]
