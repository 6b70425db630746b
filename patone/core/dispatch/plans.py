"""A driver's plan: the jobs they hold, in the order to drive them, with planned arrivals.

A driver can hold several accepted jobs (a dispatcher stacked them, or jobs queued behind the
one they are on). `driver_route` orders the ones not started yet with the route optimiser
(`routing.sequence_for_driver`: every order for up to three, OR-Tools beyond, greedy when it
runs out of time), starting from where the driver is, or from where and when their current job
ends; emergencies weigh most. The driver app shows it as "next", and the dispatch map as the
truck's route.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

from patone.core.common.permissions import Actor, require
from patone.core.dispatch import workload
from patone.core.dispatch.positions import positions_of
from patone.core.dispatch.routing import Stop, sequence_for_driver
from patone.core.dispatch.travel import travel_matrix
from patone.core.runtime.clock import now
from patone.core.runtime.db import engine
from patone.core.runtime.errors import NotFound
from patone.plugins.types import GeoPoint
from patone.tenants.isolation import TenantRef, tenant_transaction

PRIORITY = {"low": 0, "normal": 1, "high": 2, "emergency": 3}


@dataclass(frozen=True)
class RouteStop:
    request_id: int
    number: int
    priority: str
    lat: float
    lng: float
    arrive_at: datetime
    travel_s: int  # from the previous stop (or the driver)


async def driver_route(tenant: TenantRef, actor: Actor, driver_id: int) -> list[RouteStop]:
    """The driver's unstarted jobs in the order to drive them (drivers see their own)."""
    if actor.driver_id != driver_id:
        require(actor, "drivers.view")
    at = now()
    async with tenant_transaction(tenant):
        driver = await engine.fetch(
            "SELECT id, last_lat, last_lng FROM drivers WHERE id = $1", driver_id
        )
        if not driver:
            raise NotFound("not_found", "no such driver", "driver_id")
        queued = [
            dict(row)
            for row in await engine.fetch(
                "SELECT id, number, priority, service_type, pickup_lat, pickup_lng "
                "FROM service_requests WHERE driver = $1 AND status = 'assigned' "
                "ORDER BY assigned_at",
                driver_id,
            )
        ]
        if not queued:
            return []
        current = await workload.current_finish(tenant, driver_id, at)
        typical = await workload.typical_seconds(tenant)
    if current is not None:
        start, wait = (current.lat, current.lng), current.in_s
    else:
        where = (await positions_of(tenant, driver)).get(driver_id)
        if where is None:
            raise NotFound("no_position", "the driver's position is unknown", "driver_id")
        start, wait = where, 0.0
    places = [start, *((job["pickup_lat"], job["pickup_lng"]) for job in queued)]
    durations = await travel_seconds(tenant, places, at)
    stops = [
        Stop(
            id=job["id"],
            index=i + 1,
            service_s=round(typical.get(job["service_type"], 60 * workload.PRIOR_MINUTES)),
            priority=PRIORITY.get(job["priority"], 1),
        )
        for i, job in enumerate(queued)
    ]
    planned = await asyncio.to_thread(sequence_for_driver, 0, round(wait), stops, durations)
    by_id = {job["id"]: job for job in queued}
    return [
        RouteStop(
            request_id=p.stop_id,  # type: ignore[arg-type]
            number=by_id[p.stop_id]["number"],
            priority=by_id[p.stop_id]["priority"],
            lat=by_id[p.stop_id]["pickup_lat"],
            lng=by_id[p.stop_id]["pickup_lng"],
            arrive_at=at + timedelta(seconds=p.arrive_s),
            travel_s=p.travel_s,
        )
        for p in planned
    ]


async def travel_seconds(
    tenant: TenantRef, places: list[tuple[float, float]], at: datetime
) -> list[list[int | None]]:
    """Travel seconds between every pair of places (None: no road), in one call of the maps
    plugin."""
    points = [GeoPoint(lat=lat, lng=lng) for lat, lng in places]
    matrix = await travel_matrix(tenant, points, points, at)
    return [[cell.duration_s if cell else None for cell in row] for row in matrix]
