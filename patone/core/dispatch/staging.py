"""Where idle drivers should wait: near where this company's calls come from at this hour.

A truck idling at the workshop it last towed to is far from most of the next calls. From the
company's own requests of the last weeks at this hour of the day (± `WINDOW_HOURS`), the engine
picks as many waiting places as there are idle drivers (a greedy k-median: each new place is the
call location that most shortens the distance from every call to its nearest place), pairs
drivers with places so the total distance is least (OR-Tools' linear sum assignment), and
suggests a move to each driver more than `MOVE_KM` from theirs. Dispatchers read them all, a
driver their own (`stagingSuggestions`). Nothing moves by itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from ortools.graph.python import linear_sum_assignment

from patone.core.clock import now
from patone.core.db import engine
from patone.core.dispatch.engine import IDLE, positions_of
from patone.core.dispatch.settings import read_settings
from patone.core.permissions import Actor, require
from patone.core.service_types import distance_km
from patone.tenants.isolation import TenantRef, tenant_transaction

HISTORY_DAYS = 28
WINDOW_HOURS = 2
MIN_CALLS = 30  # fewer calls at this hour: no suggestion (too little to go on)
MAX_CALLS = 400  # the latest ones count
MOVE_KM = 1.0  # a driver this close to their place stays put


@dataclass(frozen=True)
class Move:
    """A suggestion: `driver_id` should wait at (lat, lng), `km` away (straight line)."""

    driver_id: int
    lat: float
    lng: float
    km: float


async def staging_suggestions(tenant: TenantRef, actor: Actor) -> list[Move]:
    """Where idle drivers should wait now: every suggestion for dispatchers, a driver's own
    for a driver. Empty when the company turned staging off."""
    if actor.driver_id is None:
        require(actor, "drivers.view")
    settings, zone = await read_settings(tenant)
    if not settings.staging:
        return []
    moves = await suggest_moves(tenant, now(), zone)
    if actor.driver_id is not None and not actor.can("drivers.view"):
        moves = [m for m in moves if m.driver_id == actor.driver_id]
    return moves


async def suggest_moves(tenant: TenantRef, at: datetime, zone: str = "UTC") -> list[Move]:
    """Where this company's idle drivers should wait now (see the module docs)."""
    async with tenant_transaction(tenant):
        recent = await engine.fetch(
            "SELECT pickup_lat AS lat, pickup_lng AS lng, "
            "extract(hour FROM created_at AT TIME ZONE $3)::int AS hour FROM service_requests "
            "WHERE created_at >= $1 AND created_at <= $2 ORDER BY created_at DESC LIMIT $4",
            at - timedelta(days=HISTORY_DAYS),
            at,
            zone,
            MAX_CALLS * 12,
        )
        idle = await engine.fetch(
            f"SELECT d.id, d.last_lat, d.last_lng FROM drivers d WHERE {IDLE} ORDER BY d.id"
        )
    where = await positions_of(tenant, idle)
    drivers = [(d["id"], where[d["id"]]) for d in idle if d["id"] in where]
    hour = at.astimezone(ZoneInfo(zone)).hour
    points = [
        (c["lat"], c["lng"])
        for c in recent
        if min(abs(c["hour"] - hour), 24 - abs(c["hour"] - hour)) <= WINDOW_HOURS
    ][:MAX_CALLS]
    if len(points) < MIN_CALLS or not drivers:
        return []
    sites = k_median(points, len(drivers))
    moves = []
    for (driver_id, (lat, lng)), site in zip(drivers, _pair(drivers, sites), strict=True):
        km = distance_km(lat, lng, site[0], site[1])
        if km > MOVE_KM:
            moves.append(Move(driver_id, site[0], site[1], round(km, 2)))
    return moves


def _plane(points: list[tuple[float, float]]) -> np.ndarray:
    """Points in km on a local plane (good enough within a city)."""
    lat0 = sum(p[0] for p in points) / len(points)
    scale = 111.32 * math.cos(math.radians(lat0))
    return np.array([(p[0] * 111.32, p[1] * scale) for p in points])


def k_median(points: list[tuple[float, float]], k: int) -> list[tuple[float, float]]:
    """`k` of `points` chosen greedily so every point is near one of them (each pick most
    shortens the total distance of the points to their nearest pick)."""
    xy = _plane(points)
    distance = np.linalg.norm(xy[:, None, :] - xy[None, :, :], axis=2)
    nearest = np.full(len(points), np.inf)
    chosen: list[int] = []
    for _ in range(min(k, len(points))):
        gain = np.maximum(nearest[:, None] - distance, 0).sum(axis=0)
        gain[chosen] = -1
        best = int(np.argmax(gain))
        chosen.append(best)
        nearest = np.minimum(nearest, distance[:, best])
    sites = [points[i] for i in chosen]
    while len(sites) < k:  # more drivers than calls: the busiest places twice
        sites.append(sites[len(sites) % len(chosen)])
    return sites


def _pair(
    drivers: list[tuple[int, tuple[float, float]]], sites: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    """For each driver (in order), their place: the pairing with the least total distance."""
    solver = linear_sum_assignment.SimpleLinearSumAssignment()
    for i, (_, (lat, lng)) in enumerate(drivers):
        for j, (slat, slng) in enumerate(sites):
            solver.add_arc_with_cost(i, j, round(distance_km(lat, lng, slat, slng) * 1000))
    if solver.solve() != solver.OPTIMAL:
        return sites[: len(drivers)]
    return [sites[solver.right_mate(i)] for i in range(len(drivers))]
