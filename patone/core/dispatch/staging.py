"""Where idle drivers should wait: near where this company's calls come from at this hour.

A truck idling at the workshop it last towed to is far from most of the next calls. From the
company's own requests of the last weeks at this hour of the day (± `WINDOW_HOURS`), the engine
picks as many waiting places as there are idle drivers (a greedy k-median: each new place is the
call location that most shortens the distance from every call to its nearest place), pairs
drivers with places so the total distance is least (OR-Tools' linear sum assignment), and
suggests a move to each driver more than `MOVE_KM` from theirs (`suggest_moves`).

Drivers are told, not just asked to look: every `STAGE_MINUTES` the workers (`jobs.py`) and
the simulator call `publish_moves`, which keeps each driver's current suggestion
(`staging_moves`) and tells only what changed: a driver whose new place is within `MOVE_KM` of
the stored one is not told again, a driver no longer idle or no longer suggested loses theirs.
Each new suggestion is an event (`driver.staging_suggested`: the driver's phone rings, the
`stagingUpdates` subscription hears it), each cleared one too (`driver.staging_cleared`).
Dispatchers read the stored suggestions (what drivers were told) with `stagingSuggestions`, a
driver their own. Nothing moves by itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from ortools.graph.python import linear_sum_assignment

from patone.core.common import topics
from patone.core.common.activity import emit
from patone.core.common.permissions import Actor, require
from patone.core.dispatch.matching import IDLE
from patone.core.dispatch.offers import lock_dispatch
from patone.core.dispatch.positions import positions_of
from patone.core.dispatch.settings import STORED, parse_stored, read_settings
from patone.core.domain.service_types import distance_km
from patone.core.runtime.clock import now
from patone.core.runtime.db import engine
from patone.tenants.isolation import TenantRef, tenant_transaction

HISTORY_DAYS = 28
WINDOW_HOURS = 2
MIN_CALLS = 30  # fewer calls at this hour: no suggestion (too little to go on)
MAX_CALLS = 400  # the latest ones count
MOVE_KM = 1.0  # a driver this close to their place stays put; a place this close is the same
STAGE_MINUTES = 5  # drivers are told at most this often (the periodic job; the simulator)
DUE_SLACK_S = 30  # the scheduler looks once a minute: a round due within this is due now


@dataclass(frozen=True)
class Move:
    """A suggestion: `driver_id` should wait at (lat, lng), `km` away (straight line), near
    `place` (the address of the call the place was picked from, when it had one);
    `suggested_at`: when the driver was told (None: computed, not told yet)."""

    driver_id: int
    lat: float
    lng: float
    km: float
    place: str = ""
    suggested_at: datetime | None = None


_STANDING = (
    "SELECT m.driver_id, m.lat, m.lng, m.km, m.place, m.suggested_at FROM staging_moves m "
    f"JOIN drivers d ON d.id = m.driver_id WHERE {IDLE} ORDER BY m.driver_id"
)


async def staging_suggestions(tenant: TenantRef, actor: Actor) -> list[Move]:
    """What idle drivers were told, still standing (a driver since busy drops theirs): every
    suggestion for dispatchers, a driver's own for a driver. Empty when the company turned
    staging off."""
    if actor.driver_id is None:
        require(actor, "drivers.view")
    async with tenant_transaction(tenant):
        settings, _ = parse_stored(await engine.fetch(STORED))
        rows = await engine.fetch(_STANDING) if settings.staging else []
    moves = [Move(**dict(row)) for row in rows]
    if actor.driver_id is not None and not actor.can("drivers.view"):
        moves = [m for m in moves if m.driver_id == actor.driver_id]
    return moves


async def suggest_moves(tenant: TenantRef, at: datetime, zone: str = "UTC") -> list[Move]:
    """Where this company's idle drivers should wait now (see the module docs)."""
    async with tenant_transaction(tenant):
        idle = await engine.fetch(
            f"SELECT d.id, d.last_lat, d.last_lng FROM drivers d WHERE {IDLE} ORDER BY d.id"
        )
        if not idle:  # a quiet company: no history to read
            return []
        recent = await engine.fetch(
            "SELECT pickup_lat AS lat, pickup_lng AS lng, pickup_address AS address, "
            "extract(hour FROM created_at AT TIME ZONE $3)::int AS hour FROM service_requests "
            "WHERE created_at >= $1 AND created_at <= $2 ORDER BY created_at DESC LIMIT $4",
            at - timedelta(days=HISTORY_DAYS),
            at,
            zone,
            MAX_CALLS * 12,
        )
    where = await positions_of(tenant, idle)
    drivers = [(d["id"], where[d["id"]]) for d in idle if d["id"] in where]
    hour = at.astimezone(ZoneInfo(zone)).hour
    calls = [
        c for c in recent if min(abs(c["hour"] - hour), 24 - abs(c["hour"] - hour)) <= WINDOW_HOURS
    ][:MAX_CALLS]
    if len(calls) < MIN_CALLS or not drivers:
        return []
    points = [(c["lat"], c["lng"]) for c in calls]
    places = {(c["lat"], c["lng"]): c["address"] or "" for c in reversed(calls)}  # the latest
    sites = k_median(points, len(drivers))
    moves = []
    for (driver_id, (lat, lng)), site in zip(drivers, _pair(drivers, sites), strict=True):
        km = distance_km(lat, lng, site[0], site[1])
        if km > MOVE_KM:
            moves.append(Move(driver_id, site[0], site[1], round(km, 2), places[site]))
    return moves


# --- telling drivers ----------------------------------------------------------------------------


async def publish_moves(tenant: TenantRef, at: datetime, zone: str = "UTC") -> list[Move]:
    """Work out where idle drivers should wait at `at` and tell them what changed (see the
    module docs); returns the new suggestions (what drivers are told now). With staging off,
    nothing, and the stored suggestions are cleared."""
    settings, _ = await read_settings(tenant)
    moves = await suggest_moves(tenant, at, zone) if settings.staging else []
    return await _store(tenant, at, moves)


async def publish_when_due(tenant: TenantRef) -> list[Move] | None:
    """The periodic job's round: `publish_moves` when the company's drivers were last told
    `STAGE_MINUTES` ago (or never) and staging is on, or it is off with suggestions left to
    clear; else None, after one short transaction."""
    at = now()
    async with tenant_transaction(tenant):
        settings, zone = parse_stored(await engine.fetch(STORED))
        rows = await engine.fetch(
            "SELECT (SELECT max(at) FROM staging_rounds) AS latest, "
            "EXISTS (SELECT 1 FROM staging_moves) AS told"
        )
    latest, told = rows[0]["latest"], rows[0]["told"]
    if not settings.staging and not told:
        return None
    if settings.staging and latest is not None and at - latest < _period():
        return None
    return await publish_moves(tenant, at, zone)


def _period() -> timedelta:
    return timedelta(seconds=STAGE_MINUTES * 60 - DUE_SLACK_S)


def _same(stored: Any, move: Move) -> bool:
    """The stored suggestion names the same place (within `MOVE_KM`)."""
    return distance_km(stored["lat"], stored["lng"], move.lat, move.lng) <= MOVE_KM


async def _store(tenant: TenantRef, at: datetime, moves: list[Move]) -> list[Move]:
    """Keep `moves` as the drivers' current suggestions and emit what changed, under the
    company's dispatch lock; nothing when a round as fresh is already stored (two racing
    rounds tell drivers once)."""
    async with tenant_transaction(tenant):
        await lock_dispatch(tenant)
        fresher = await engine.fetch("SELECT 1 FROM staging_rounds WHERE at >= $1", at)
        if fresher:
            return []
        stored = {
            row["driver_id"]: row
            for row in await engine.fetch("SELECT driver_id, lat, lng FROM staging_moves")
        }
        new = [
            replace(m, suggested_at=at)
            for m in moves
            if m.driver_id not in stored or not _same(stored[m.driver_id], m)
        ]
        cleared = sorted(set(stored) - {m.driver_id for m in moves})
        await engine.execute("DELETE FROM staging_moves WHERE driver_id = ANY($1::int[])", cleared)
        await engine.executemany(
            "INSERT INTO staging_moves (driver_id, lat, lng, km, place, suggested_at) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (driver_id) DO UPDATE SET "
            "lat = EXCLUDED.lat, lng = EXCLUDED.lng, km = EXCLUDED.km, place = EXCLUDED.place, "
            "suggested_at = EXCLUDED.suggested_at",
            [(m.driver_id, m.lat, m.lng, m.km, m.place, at) for m in new],
        )
        for move in new:
            await emit(topics.DRIVER_STAGING_SUGGESTED, move.driver_id, _payload(move))
        for driver_id in cleared:
            await emit(topics.DRIVER_STAGING_CLEARED, driver_id, topics.StagingCleared(driver_id))
        await engine.execute("DELETE FROM staging_rounds")
        await engine.execute("INSERT INTO staging_rounds (at) VALUES ($1)", at)
    return new


def _payload(move: Move) -> topics.StagingSuggested:
    return topics.StagingSuggested(
        driver_id=move.driver_id,
        lat=move.lat,
        lng=move.lng,
        km=move.km,
        place=move.place,
        suggested_at=move.suggested_at.isoformat() if move.suggested_at else None,
    )


def move_of(payload: dict[str, Any]) -> Move:
    """The suggestion a `driver.staging_suggested` event carries."""
    return Move(
        driver_id=int(payload["driver_id"]),
        lat=float(payload["lat"]),
        lng=float(payload["lng"]),
        km=float(payload["km"]),
        place=str(payload.get("place") or ""),
        suggested_at=datetime.fromisoformat(payload["suggested_at"]),
    )


# --- the places ---------------------------------------------------------------------------------


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
