"""The choice of driver: who could take a waiting request, and who should.

`consider` reads the drivers on shift and what they are doing (in one transaction), leaves out
those who cannot take the request and says why (declined it, busy, lacks a skill, too far),
asks the maps plugins for the nearest ones' travel times (`travel.py`) and ranks them
(`candidates.py`). `match` pairs several waiting requests with drivers at once, so the total
cost is least. `still_free` checks, under the dispatch lock, that a chosen driver may still be
offered work. Acting on the choice is the sweep's (`autodispatch.py`); the offer itself is
`offers.py`'s.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ortools.graph.python import linear_sum_assignment

from patone.core.dispatch import candidates as cands
from patone.core.dispatch import workload
from patone.core.dispatch.candidates import Candidate, Excluded, Scored
from patone.core.dispatch.positions import positions_of
from patone.core.dispatch.settings import DispatchSettings
from patone.core.dispatch.travel import travel_estimates
from patone.core.domain.service_types import distance_km
from patone.core.runtime.clock import now
from patone.core.runtime.db import engine
from patone.core.runtime.errors import NotFound
from patone.core.tables.dispatch import JobRow, RequestToDispatchRow
from patone.plugins.types import GeoPoint
from patone.tenants.isolation import TenantRef, tenant_transaction

MATRIX_LIMIT = 25  # nearest candidates (straight line) whose travel time is asked of the maps


# SQL the dispatch readers share. The jobs that occupy a driver: accepted and not finished.
ON_JOB = "('assigned', 'en_route', 'on_scene', 'in_progress')"

# A driver (`d`) on shift: not archived, available or busy (not off duty nor on a break).
ON_SHIFT = "d.archived_at IS NULL AND d.status IN ('available', 'busy')"

# A driver (`d`) who may be sent an offer: on shift, no offer awaiting their answer.
OFFERABLE = (
    f"{ON_SHIFT} "
    "AND NOT EXISTS (SELECT 1 FROM offers o WHERE o.driver_id = d.id AND o.status = 'open')"
)

# A driver (`d`) with nothing to do: offerable, available and on no job.
IDLE = (
    f"{OFFERABLE} AND d.status = 'available' AND NOT EXISTS "
    f"(SELECT 1 FROM service_requests r WHERE r.driver = d.id AND r.status IN {ON_JOB})"
)


def _day_start(at: datetime, zone: str) -> datetime:
    local = at.astimezone(ZoneInfo(zone))
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


_DRIVERS = f"""
WITH active AS (
    SELECT driver, count(*) AS n, min(id) AS job,
           bool_and(status = 'assigned' AND priority <> 'emergency') AS unstarted
    FROM service_requests
    WHERE driver IS NOT NULL AND status IN {ON_JOB}
    GROUP BY driver
), today AS (
    SELECT driver, count(*) AS n FROM service_requests
    WHERE driver IS NOT NULL AND assigned_at >= $1 GROUP BY driver
), shifted AS (
    SELECT driver,
           sum(extract(epoch FROM least(ends_at, $2::timestamptz)
                                  - greatest(starts_at, $1::timestamptz))) AS s
    FROM shifts WHERE starts_at < $2 AND ends_at > $1 GROUP BY driver
), shift_left AS (
    SELECT driver, max(extract(epoch FROM ends_at - $2::timestamptz)) AS s
    FROM shifts WHERE starts_at <= $2 AND ends_at > $2 GROUP BY driver
)
SELECT d.id, d.name, d.status, d.skills, d.rating, d.last_lat, d.last_lng,
       coalesce(t.n, 0) AS jobs_today, coalesce(a.n, 0) AS active_jobs, a.unstarted, a.job,
       -- on duty since they came on duty (today's part of it); without that on record, their
       -- shifts of the day up to now; without those, since the day began
       coalesce(
           CASE WHEN d.on_duty_since IS NOT NULL THEN greatest(0, extract(epoch FROM
               $2::timestamptz - greatest(d.on_duty_since, $1::timestamptz))) END,
           s.s, extract(epoch FROM $2::timestamptz - $1::timestamptz))::float8 AS on_shift_s,
       l.s::float8 AS shift_left_s,  -- until their shift ends; NULL without one on record
       EXISTS (SELECT 1 FROM offers o WHERE o.driver_id = d.id AND o.status = 'open') AS offered
FROM drivers d LEFT JOIN active a ON a.driver = d.id LEFT JOIN today t ON t.driver = d.id
     LEFT JOIN shifted s ON s.driver = d.id LEFT JOIN shift_left l ON l.driver = d.id
WHERE {ON_SHIFT}
ORDER BY d.id
"""


@dataclass(frozen=True)
class Situation:
    request: RequestToDispatchRow
    candidates: list[Candidate]
    excluded: list[Excluded]
    fleet: cands.Fleet


async def _situation(
    tenant: TenantRef,
    request: RequestToDispatchRow,
    settings: DispatchSettings,
    zone: str,
    at: datetime,
) -> Situation:
    """Who is on shift and could take `request` (read in the caller's transaction)."""
    skills = await engine.fetch(
        "SELECT required_skills FROM service_types WHERE id = $1", request.service_type
    )
    required = frozenset(skills[0]["required_skills"] or []) if skills else frozenset()
    tried = _Tried.of(
        await engine.fetch(
            "SELECT driver_id, status FROM offers WHERE request_id = $1 "
            "AND status IN ('declined', 'expired')",
            request.id,
        )
    )
    drivers = await engine.fetch(_DRIVERS, _day_start(at, zone), at)
    live = await positions_of(tenant, drivers)
    finishing = await _finishing(tenant, drivers, settings, at)
    emergency = request.priority == "emergency"
    found: list[Candidate] = []
    excluded: list[Excluded] = []
    for d in drivers:
        reason = _exclusion(d, required, tried, settings, emergency)
        done = finishing.get(d["id"])
        if reason == "busy" and done is not None:
            reason = None
            if done.in_s > settings.queue_within_minutes * 60:
                reason = f"busy for about {done.in_s / 60:.0f} min"
        if reason is None and d["id"] not in live and done is None:
            reason = "position unknown"
        if reason is not None:
            excluded.append(Excluded(d["id"], d["name"], reason))
            continue
        where = (done.lat, done.lng) if done is not None else live[d["id"]]
        candidate = Candidate(
            driver_id=d["id"],
            name=d["name"],
            lat=where[0],
            lng=where[1],
            jobs_today=d["jobs_today"],
            on_shift_s=d["on_shift_s"],
            shift_left_s=d["shift_left_s"],
            rating=cands.rating_stars(d["rating"]),
            preempts=d["job"] if d["status"] == "busy" and done is None else None,
            wait_s=done.in_s if done is not None else 0.0,
            after=done.request_id if done is not None else None,
            lapsed=tried.lapsed[d["id"]],
        )
        if not cands.within_radius(
            request.pickup_lat, request.pickup_lng, candidate, settings.radius_km
        ):
            excluded.append(Excluded(d["id"], d["name"], f"beyond {settings.radius_km:g} km"))
            continue
        found.append(candidate)
    fleet = cands.Fleet(
        jobs=sum(d["jobs_today"] for d in drivers),
        hours=sum(d["on_shift_s"] for d in drivers) / 3600,
    )
    return Situation(request, found, excluded, fleet)


async def _finishing(
    tenant: TenantRef, drivers: Sequence[Any], settings: DispatchSettings, at: datetime
) -> dict[int, workload.Finish]:
    """For each busy driver on exactly one started job: when and where it ends (read in the
    caller's transaction). Empty when the company does not queue jobs behind others."""
    jobs = [d["job"] for d in drivers if d["active_jobs"] == 1 and not d["unstarted"]]
    if not settings.queue_within_minutes or not jobs:
        return {}
    typical = await workload.typical_seconds(tenant)
    rows = await engine.fetch(
        f"SELECT {JobRow.columns()} FROM service_requests WHERE id = ANY($1::int[])", jobs
    )
    found = {}
    for row in rows:
        done = workload.finish(JobRow.of(row), typical, at)
        if done is not None:
            found[row["driver"]] = done
    return found


@dataclass(frozen=True)
class _Tried:
    """Who already had an offer for the request that came to nothing: who declined it (final),
    and how many offers each driver let lapse unanswered (not a refusal: they may be asked
    again, `DispatchSettings.lapsed_reoffers` times)."""

    declined: frozenset[int]
    lapsed: Counter[int]

    @classmethod
    def of(cls, rows: Sequence[Any]) -> _Tried:
        return cls(
            frozenset(r["driver_id"] for r in rows if r["status"] == "declined"),
            Counter(r["driver_id"] for r in rows if r["status"] == "expired"),
        )


def _exclusion(
    driver: Any,
    required: frozenset[str],
    tried: _Tried,
    settings: DispatchSettings,
    emergency: bool,
) -> str | None:
    if driver["id"] in tried.declined:
        return "declined it"
    lapsed = tried.lapsed[driver["id"]]
    if lapsed > settings.lapsed_reoffers:
        return f"let {lapsed} offers lapse" if lapsed > 1 else "let an offer lapse"
    if driver["offered"]:
        return "has another offer"
    missing = required - set(driver["skills"] or [])
    if missing:
        return "lacks " + ", ".join(sorted(missing))
    if driver["status"] == "busy":
        if emergency and settings.preempt and driver["active_jobs"] == 1 and driver["unstarted"]:
            return None
        return "busy"
    return None


async def _with_travel(
    tenant: TenantRef, situation: Situation, at: datetime
) -> tuple[list[Candidate], list[Excluded]]:
    request = situation.request
    pickup = GeoPoint(lat=request.pickup_lat, lng=request.pickup_lng)
    by_line = sorted(
        situation.candidates,
        key=lambda c: distance_km(pickup.lat, pickup.lng, c.lat, c.lng),
    )
    asked, beyond = by_line[:MATRIX_LIMIT], by_line[MATRIX_LIMIT:]
    estimates = await travel_estimates(
        tenant, [GeoPoint(lat=c.lat, lng=c.lng) for c in asked], pickup, at
    )
    timed = [
        replace(c, travel_s=e.duration_s, distance_m=e.distance_m) if e else c
        for c, e in zip(asked, estimates, strict=True)
    ]
    excluded = [Excluded(c.driver_id, c.name, "further than the nearest ones") for c in beyond]
    excluded += [Excluded(c.driver_id, c.name, "no road") for c in timed if c.travel_s is None]
    return timed, excluded


async def read_request(request_id: int, *, lock: bool) -> RequestToDispatchRow | None:
    rows = await engine.fetch(
        f"SELECT {RequestToDispatchRow.columns()} FROM service_requests "
        f"WHERE id = $1{' FOR UPDATE' if lock else ''}",
        request_id,
    )
    return RequestToDispatchRow.of(rows[0]) if rows else None


def is_waiting(request: RequestToDispatchRow | None) -> bool:
    return (
        request is not None
        and request.status == "pending"
        and not request.offered
        and not request.needs_dispatcher
    )


@dataclass(frozen=True)
class Considered:
    """A waiting request's ranked candidates, read but not acted on yet."""

    request_id: int
    priority: str
    ranked: list[Scored]
    excluded: list[Excluded]
    situation: Situation


async def consider(
    tenant: TenantRef, request_id: int, settings: DispatchSettings, zone: str
) -> Considered | None:
    """Rank the candidates for a waiting request (None when it is not waiting)."""
    at = now()
    async with tenant_transaction(tenant):
        request = await read_request(request_id, lock=False)
        if request is None:
            raise NotFound("not_found", "no such request", "request_id")
        if not is_waiting(request):
            return None
        situation = await _situation(tenant, request, settings, zone, at)
    timed, no_road = await _with_travel(tenant, situation, at)
    ranked = cands.rank(
        timed,
        weights=settings.weights,
        fleet=situation.fleet,
        priority=request.priority,
        strategy=settings.strategy,
        emergency_tie_s=settings.emergency_tie_minutes * 60,
    )
    return Considered(request_id, request.priority, ranked, situation.excluded + no_road, situation)


# Cost (hundredths of a minute) of leaving a request without a driver: more for each place
# nearer the front of the queue, so when drivers are short the first in line get them and the
# matching only arranges who goes where among those.
UNMATCHED = 10_000_000
QUEUE_PLACE = 1_000_000


def match(considered: list[Considered]) -> dict[int, int]:
    """Request id -> driver id, least total cost, each driver at most once, the first in line
    first when drivers are short (`considered` is in queue order). The problem is made
    square (a spare place per request, a spare request per driver): OR-Tools' solver aborts the
    process on an unbalanced one."""
    drivers = sorted({s.candidate.driver_id for c in considered for s in c.ranked})
    if len(considered) < 2 or not drivers:
        return {c.request_id: c.ranked[0].candidate.driver_id for c in considered if c.ranked}
    column = {driver: j for j, driver in enumerate(drivers)}
    lowest = min(s.cost for c in considered for s in c.ranked)
    solver = linear_sum_assignment.SimpleLinearSumAssignment()
    for i, c in enumerate(considered):
        for s in c.ranked:
            solver.add_arc_with_cost(
                i, column[s.candidate.driver_id], round((s.cost - lowest) * 100)
            )
        solver.add_arc_with_cost(
            i, len(drivers) + i, UNMATCHED + (len(considered) - i) * QUEUE_PLACE
        )
    for k in range(len(drivers)):
        for j in range(len(drivers) + len(considered)):
            solver.add_arc_with_cost(len(considered) + k, j, 0)
    if solver.solve() != solver.OPTIMAL:
        return {}
    found = {}
    for i, c in enumerate(considered):
        j = solver.right_mate(i)
        if j < len(drivers):
            found[c.request_id] = drivers[j]
    return found


async def still_free(candidates: list[Candidate]) -> set[int]:
    """Of these drivers, those who still may get an offer (read under the dispatch lock)."""
    if not candidates:
        return set()
    rows = await engine.fetch(
        "SELECT d.id, d.status, (SELECT count(*) FROM service_requests r WHERE r.driver = d.id "
        f"AND r.status IN {ON_JOB}) AS active "
        f"FROM drivers d WHERE d.id = ANY($1::int[]) AND {OFFERABLE}",
        [c.driver_id for c in candidates],
    )
    state = {row["id"]: (row["status"], row["active"]) for row in rows}
    free = set()
    for c in candidates:
        status, active = state.get(c.driver_id, ("gone", 0))
        idle = status == "available" and active == 0
        if idle or (status == "busy" and active == 1 and (c.preempts or c.after)):
            free.add(c.driver_id)
    return free
