"""When a busy driver will be free, and where: so a job can queue behind the one they are on.

A driver finishing a job near a new call often reaches it sooner than a free driver across town.
The engine needs two guesses for that: how long the driver's current job still takes, and where
it ends (the scene, or the workshop a towed car goes to). The time comes from the company's own
history: the median time from arriving on scene to completing, per service type, over its last
completed jobs (learned as it works; a prior until it has enough), kept per process for a few
minutes. A job still being driven to adds the time left to the scene (its ETA).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from patone.core.runtime.db import engine
from patone.core.tables.dispatch import JobRow
from patone.tenants.isolation import TenantRef

PRIOR_MINUTES = 20.0  # arrival to completion, before the company has history
PRIOR_TOW_MINUTES = 40.0  # towing includes the drive to the workshop
MIN_SAMPLES = 10
HISTORY = 200  # latest completed jobs per service type that count
CACHE_SECONDS = 300.0
FLOOR_SECONDS = 60.0  # a job past its typical length is still not done this instant

_cache: dict[str, tuple[float, dict[int, float]]] = {}


@dataclass(frozen=True)
class Finish:
    """A busy driver's current job: when it should be done (seconds from now) and where."""

    request_id: int
    in_s: float
    lat: float
    lng: float


async def typical_seconds(tenant: TenantRef) -> dict[int, float]:
    """Median seconds from arrival on scene to completion, by service type id (read in the
    caller's tenant transaction; cached per process)."""
    cached = _cache.get(tenant.slug)
    if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
        return cached[1]
    rows = await engine.fetch(
        """
        SELECT service_type, count(*) AS n,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS median
        FROM (
            SELECT service_type, extract(epoch FROM completed_at - on_scene_at) AS seconds,
                   row_number() OVER (PARTITION BY service_type ORDER BY completed_at DESC) AS k
            FROM service_requests
            WHERE status = 'completed' AND on_scene_at IS NOT NULL
        ) recent
        WHERE k <= $1
        GROUP BY service_type
        """,
        HISTORY,
    )
    learned = {row["service_type"]: float(row["median"]) for row in rows if row["n"] >= MIN_SAMPLES}
    _cache[tenant.slug] = (time.monotonic(), learned)
    return learned


def forget(tenant: TenantRef) -> None:
    _cache.pop(tenant.slug, None)


def work_seconds(service_type: int, towing: bool, typical: dict[int, float]) -> float:
    """How long a job of this service (`towing`: it has a destination) takes from arriving on
    scene to done: the company's median, else the prior (towing's longer)."""
    return typical.get(service_type, 60 * (PRIOR_TOW_MINUTES if towing else PRIOR_MINUTES))


def finish(job: JobRow, typical: dict[int, float], at: datetime) -> Finish | None:
    """When and where the driver's job `job` ends; None when it has not started (an unstarted
    job is pre-empted or waited for, never queued behind)."""
    work = work_seconds(job.service_type, job.destination_lat is not None, typical)
    if job.status in ("on_scene", "in_progress") and job.on_scene_at is not None:
        left = work - (at - job.on_scene_at).total_seconds()
    elif job.status == "en_route":
        to_scene = (job.eta_at - at).total_seconds() if job.eta_at is not None else 0.0
        left = max(to_scene, 0.0) + work
    else:
        return None
    lat, lng = (
        (job.destination_lat, job.destination_lng)
        if job.destination_lat is not None and job.destination_lng is not None
        else (job.pickup_lat, job.pickup_lng)
    )
    return Finish(job.id, max(left, FLOOR_SECONDS), lat, lng)


async def current_finishes(
    tenant: TenantRef, driver_ids: list[int], at: datetime
) -> dict[int, Finish]:
    """When and where each of these drivers' started job ends (by driver id; none for a driver
    on none), read in the caller's tenant transaction."""
    rows = await engine.fetch(
        f"SELECT DISTINCT ON (driver) {JobRow.columns()} FROM service_requests "
        "WHERE driver = ANY($1::int[]) AND status IN ('en_route', 'on_scene', 'in_progress') "
        "ORDER BY driver, id",
        driver_ids,
    )
    if not rows:
        return {}
    typical = await typical_seconds(tenant)
    found = {}
    for row in rows:
        done = finish(JobRow.of(row), typical, at)
        if done is not None:
            found[row["driver"]] = done
    return found


async def current_finish(tenant: TenantRef, driver_id: int, at: datetime) -> Finish | None:
    """When and where the driver's started job ends; None when they are on none (read in the
    caller's tenant transaction)."""
    return (await current_finishes(tenant, [driver_id], at)).get(driver_id)
