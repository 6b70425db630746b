"""Staging: idle drivers are told to wait near where this hour's calls come from, each new
place once, and nothing of one company reaches another."""

from __future__ import annotations

import asyncio

from patone.core.common.permissions import SYSTEM
from patone.core.dispatch import fleet, staging
from patone.core.dispatch.settings import update_dispatch_settings
from patone.core.domain import service_requests
from patone.core.domain.service_types import distance_km
from patone.core.runtime.db import engine
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo
from tests.conftest import actor_for
from tests.core.dispatch.world import (
    DISPATCHER,
    SCENE,
    Clock,
    calls_at_scene_before,
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


async def _events(tenant: TenantInfo) -> list[tuple[str, int]]:
    """The staging events the company emitted: (topic, driver id)."""
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "SELECT topic, entity_id FROM outbox WHERE topic LIKE 'driver.staging%' ORDER BY id"
        )
    return [(row["topic"], int(row["entity_id"])) for row in rows]


async def test_an_idle_driver_far_from_this_hours_calls_is_told_where_to_wait(
    two_tenants: tuple[TenantInfo, TenantInfo], clock: Clock
) -> None:
    acme, bolt = two_tenants
    await calls_at_scene_before(acme, staging.MIN_CALLS)
    far = await driver_at(acme, 8)
    near = await driver_at(acme, 0.5)
    bolt_driver = await driver_at(bolt, 8)  # bolt has no history: nothing to suggest

    [told] = await staging.publish_moves(acme, clock())
    assert told.driver_id == far.id  # the near one stays put
    assert distance_km(*SCENE, told.lat, told.lng) < 0.1
    assert 7.5 < told.km < 8.5
    assert told.place == "Alexanderplatz 1"  # the address of the call the place was picked at
    assert told.suggested_at == clock()
    assert await staging.staging_suggestions(acme, DISPATCHER) == [told]
    assert await staging.staging_suggestions(acme, driver_actor(far)) == [told]
    assert await staging.staging_suggestions(acme, driver_actor(near)) == []
    assert await _events(acme) == [("driver.staging_suggested", far.id)]

    assert await staging.publish_moves(bolt, clock()) == []
    assert await staging.staging_suggestions(bolt, DISPATCHER) == []
    assert await staging.staging_suggestions(bolt, driver_actor(bolt_driver)) == []
    assert await _events(bolt) == []


async def test_an_unchanged_place_is_not_told_again_and_a_driver_who_gets_a_job_loses_theirs(
    two_tenants: tuple[TenantInfo, TenantInfo], clock: Clock
) -> None:
    acme, bolt = two_tenants
    await calls_at_scene_before(acme, staging.MIN_CALLS)
    await calls_at_scene_before(bolt, staging.MIN_CALLS)
    far = await driver_at(acme, 8)
    other = await driver_at(acme, 6)
    await driver_at(bolt, 8)
    first = await staging.publish_moves(acme, clock())
    assert sorted(m.driver_id for m in first) == sorted([far.id, other.id])

    clock.advance(staging.STAGE_MINUTES * 60)
    lat, lng = east_of_scene(7)  # on the way: the same place, further on
    await fleet.set_position(acme, SYSTEM, far.id, {"lat": lat, "lng": lng})
    assert await staging.publish_moves(acme, clock()) == []  # nothing new to tell
    assert await staging.staging_suggestions(acme, DISPATCHER) == first  # as told

    request = await request_at_scene(acme)
    await service_requests.assign_driver(acme, DISPATCHER, request.id, other.id)
    # Busy at once: no longer shown, though the next round has not cleared it yet.
    assert [m.driver_id for m in await staging.staging_suggestions(acme, DISPATCHER)] == [far.id]
    clock.advance(staging.STAGE_MINUTES * 60)
    assert await staging.publish_moves(acme, clock()) == []
    assert [m.driver_id for m in await staging.staging_suggestions(acme, DISPATCHER)] == [far.id]
    events = await _events(acme)
    assert sorted(events[:2]) == sorted(
        [("driver.staging_suggested", far.id), ("driver.staging_suggested", other.id)]
    )
    assert events[2:] == [("driver.staging_cleared", other.id)]

    [bolts] = await staging.publish_moves(bolt, clock())  # bolt's own drivers, own places
    assert await _events(bolt) == [("driver.staging_suggested", bolts.driver_id)]
    assert [m.driver_id for m in await staging.staging_suggestions(acme, DISPATCHER)] == [far.id]


async def test_nothing_is_told_while_staging_is_off_and_turning_it_off_clears_what_was_told(
    two_tenants: tuple[TenantInfo, TenantInfo], clock: Clock
) -> None:
    acme, bolt = two_tenants
    for tenant in two_tenants:
        await calls_at_scene_before(tenant, staging.MIN_CALLS)
    acme_driver = await driver_at(acme, 8)
    bolt_driver = await driver_at(bolt, 8)
    await update_dispatch_settings(bolt, actor_for("admin"), {"staging": False})
    assert await staging.publish_moves(bolt, clock()) == []
    assert [m.driver_id for m in await staging.publish_moves(acme, clock())] == [acme_driver.id]

    await update_dispatch_settings(acme, actor_for("admin"), {"staging": False})
    assert await staging.staging_suggestions(acme, DISPATCHER) == []
    clock.advance(60)
    assert await staging.publish_when_due(acme) == []  # off with one told: cleared now
    assert await staging.publish_when_due(acme) is None  # then a quiet company
    assert await _events(acme) == [
        ("driver.staging_suggested", acme_driver.id),
        ("driver.staging_cleared", acme_driver.id),
    ]
    assert await staging.publish_when_due(bolt) is None
    assert await _events(bolt) == []
    assert await staging.staging_suggestions(bolt, driver_actor(bolt_driver)) == []


async def test_rounds_are_due_every_few_minutes_and_two_racing_rounds_tell_once(
    two_tenants: tuple[TenantInfo, TenantInfo], clock: Clock
) -> None:
    acme, bolt = two_tenants
    await calls_at_scene_before(acme, staging.MIN_CALLS)
    far = await driver_at(acme, 8)
    await driver_at(bolt, 8)

    rounds = await asyncio.gather(*(staging.publish_when_due(acme) for _ in range(3)))
    assert sorted(len(told or []) for told in rounds) == [0, 0, 1]
    assert await _events(acme) == [("driver.staging_suggested", far.id)]
    clock.advance(staging.STAGE_MINUTES * 60 - staging.DUE_SLACK_S - 1)
    assert await staging.publish_when_due(acme) is None  # not due yet
    clock.advance(1)
    assert await staging.publish_when_due(acme) == []  # due: nothing new to tell
    assert await staging.publish_when_due(bolt) == []  # due (never told), nothing to tell
    assert await _events(bolt) == []
