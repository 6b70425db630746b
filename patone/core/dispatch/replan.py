"""The fleet re-plan: the company's whole queue planned at once, every few minutes.

Offers go one request at a time (`autodispatch.py`), a driver's stacked jobs are ordered one
driver at a time (`plans.py`). Every `replan_minutes` (a dispatch setting: 5 by default, 0 never)
the re-plan looks at everything together: the drivers on shift (from where and when their current
job ends, else from where they are), every job a driver accepted and has not started (it stays
with that driver: an accepted job is a promise), and every pending request with no live offer.
The route optimiser (`routing.plan_routes`: OR-Tools for about a second, greedy when it has no
better plan in time) gives each driver an order with planned arrivals; the plan is stored
(`fleet_plans`, `fleet_plan_stops`) and dispatchers read the latest (`fleetPlan`).

Nothing is applied by itself: a dispatcher takes a suggestion in one step (`apply_suggestion`).
The plan's suggestions to dispatchers, each with a sentence:

- **reassign**: an accepted job another driver could reach at least `replan_sooner_minutes`
  (10) sooner than its own driver's plan has them there. The other driver goes after everything
  the plan gives them, so nothing of theirs is delayed; each driver is suggested once per plan,
  for the job they gain most on;
- **offer**: the driver the plan gives a waiting request to, and when they would be there;
- **unserved**: a waiting request no driver on shift can take (skills, roads).

OR-Tools holds the GIL for its whole search, so the solve runs in a process of its own (one
per serving or worker process, started on first use; inputs and plans pickle). When it does
not answer within the time limit and a grace, or dies, it is replaced and the greedy plan is
made here instead (milliseconds). Two re-plans racing store one plan: a plan whose snapshot is
no newer than the latest stored one is dropped (checked under the company's dispatch lock).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import threading
from collections.abc import Hashable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from patone.core.common.permissions import Actor, require
from patone.core.dispatch import offers, workload
from patone.core.dispatch.matching import ON_SHIFT
from patone.core.dispatch.offers import Decision, lock_dispatch
from patone.core.dispatch.plans import PRIORITY, travel_seconds
from patone.core.dispatch.positions import positions_of
from patone.core.dispatch.routing import (
    Durations,
    Plan,
    PlannedStop,
    Stop,
    Vehicle,
    greedy_plan,
    plan_routes,
)
from patone.core.dispatch.settings import STORED, DispatchSettings, parse_stored, read_settings
from patone.core.domain.service_requests import PRIORITY_RANK, transition_in_transaction
from patone.core.runtime.clock import now
from patone.core.runtime.db import engine
from patone.core.runtime.errors import Conflict, NotFound
from patone.core.tables.dispatch import SuggestionRow
from patone.core.tables.requests import RequestRow
from patone.tenants.isolation import TenantRef, tenant_transaction

log = logging.getLogger(__name__)

TIME_LIMIT_S = 1.0  # the solver's search: long enough to beat greedy well (docs/dispatch.md)
GRACE_S = 5.0  # beyond the limit: the solver process's first start (about 1.3 s), pickling
DUE_SLACK_S = 30  # the scheduler looks once a minute: a plan due within this is due now
# Up to this many stops the search stops at its first local optimum, nearly as good at that
# size and a fraction of the time (docs/dispatch.md, "Greedy, and the fallback"), instead of
# running guided local search for the whole limit: most companies' queues are small, and a
# second of a core every few minutes for each of them adds up.
FULL_SEARCH_FROM = 21
MAX_WAITING = 100  # pending requests in one plan, first in line first
KEEP = timedelta(days=1)  # older plans are deleted when a new one is stored


@dataclass(frozen=True)
class Suggestion:
    """Something the plan suggests a dispatcher does, and why (one sentence)."""

    kind: str  # reassign | offer | unserved
    request_id: Hashable  # the ids the plan's stops and vehicles carry: request and driver ids
    driver_id: Hashable | None  # who should take it (None: nobody can)
    why: str
    from_driver_id: Hashable | None = None  # reassign: the driver who holds it now
    arrive_s: int | None = None  # when the suggested driver would be there, from the plan's now
    sooner_s: int | None = None  # reassign: how much sooner than its own driver


@dataclass(frozen=True)
class Fleet:
    """What a plan is made of, read at one instant (`at`, second 0 of the plan)."""

    at: datetime
    vehicles: list[Vehicle]
    stops: list[Stop]
    durations: Durations
    names: dict[Hashable, str]  # driver id -> name
    numbers: dict[Hashable, int]  # request id -> number
    needs: dict[Hashable, frozenset[str]]  # request id -> skills its service type needs

    def travel(self, origin: int, destination: int) -> int | None:
        cell = self.durations[origin][destination]
        return None if cell is None or cell < 0 else cell


# --- the re-plan --------------------------------------------------------------------------------


async def replan(
    tenant: TenantRef,
    *,
    when_due: bool = False,
    time_limit_s: float = TIME_LIMIT_S,
    grace_s: float = GRACE_S,
) -> int | None:
    """Plan the company's fleet now and store the plan; returns the latest plan's id (this
    one's, or a racing re-plan's that is as fresh). With `when_due` (the periodic job), only
    when the company re-plans (`replan_minutes` above 0), has jobs to plan and its latest plan
    is that old; else None."""
    at = now()
    snapshot = await _read(tenant, at, when_due)
    if snapshot is None:
        return None
    fleet = await _fleet(tenant, snapshot)
    plan = await solve(fleet.vehicles, fleet.stops, fleet.durations, time_limit_s, grace_s)
    advice = suggestions(fleet, plan, snapshot.settings.replan_sooner_minutes * 60)
    # A plan stored since `fresh` (a racing re-plan's) makes this one redundant.
    fresh = at - _period(snapshot.settings) if when_due else at
    return await _store(tenant, fleet, plan, advice, fresh)


def _period(settings: DispatchSettings) -> timedelta:
    """How old the latest plan must be for the periodic re-plan to make a new one."""
    return timedelta(seconds=settings.replan_minutes * 60 - DUE_SLACK_S)


_DRIVERS = (
    f"SELECT d.id, d.name, d.skills, d.last_lat, d.last_lng FROM drivers d WHERE {ON_SHIFT} "
    "ORDER BY d.id"
)
_JOBS = (
    "SELECT r.id, r.number, r.driver, r.priority, r.service_type, r.pickup_lat, r.pickup_lng, "
    "r.destination_lat, t.required_skills FROM service_requests r "
    "JOIN service_types t ON t.id = r.service_type "
)
_ACCEPTED = _JOBS + "WHERE r.status = 'assigned' AND r.driver = ANY($1::int[]) ORDER BY r.id"
_WAITING = (
    _JOBS + "WHERE r.status = 'pending' AND NOT EXISTS "
    "(SELECT 1 FROM offers o WHERE o.request_id = r.id AND o.status = 'open') "
    f"ORDER BY {PRIORITY_RANK}, r.created_at, r.id LIMIT $1"
)


@dataclass(frozen=True)
class _Snapshot:
    """The company's drivers on shift and jobs to plan, as read at `at`."""

    at: datetime
    settings: DispatchSettings
    drivers: list[Any]
    finishing: dict[int, workload.Finish]  # driver id -> their started job's end
    accepted: list[dict[str, Any]]
    waiting: list[dict[str, Any]]
    typical: dict[int, float]


async def _read(tenant: TenantRef, at: datetime, when_due: bool) -> _Snapshot | None:
    """What to plan (one transaction); None when `when_due` and it is not due."""
    async with tenant_transaction(tenant):
        settings, _ = parse_stored(await engine.fetch(STORED))
        if when_due:
            if not settings.replan_minutes:
                return None
            latest = await engine.fetch("SELECT max(created_at) AS at FROM fleet_plans")
            if latest[0]["at"] is not None and at - latest[0]["at"] < _period(settings):
                return None
        drivers = list(await engine.fetch(_DRIVERS))
        ids = [d["id"] for d in drivers]
        accepted = [dict(row) for row in await engine.fetch(_ACCEPTED, ids)]
        waiting = [dict(row) for row in await engine.fetch(_WAITING, MAX_WAITING)]
        if when_due and not accepted and not waiting:
            return None
        finishing = await workload.current_finishes(tenant, ids, at)
        typical = await workload.typical_seconds(tenant)
    return _Snapshot(at, settings, drivers, finishing, accepted, waiting, typical)


async def _fleet(tenant: TenantRef, snapshot: _Snapshot) -> Fleet:
    """The routing problem: drivers who can be placed (from where and when their current job
    ends, else where they are), their accepted jobs fixed to them, the waiting requests, and
    travel between all of those places from the maps plugin in one call."""
    live = await positions_of(tenant, snapshot.drivers)
    vehicles: list[Vehicle] = []
    places: list[tuple[float, float]] = []
    for d in snapshot.drivers:
        done = snapshot.finishing.get(d["id"])
        start = (done.lat, done.lng) if done is not None else live.get(d["id"])
        if start is None:  # no position and no job: the plan cannot place them
            continue
        vehicles.append(
            Vehicle(
                id=d["id"],
                start_index=len(places),
                available_at_s=round(done.in_s) if done is not None else 0,
                skills=frozenset(d["skills"] or []),
            )
        )
        places.append(start)
    placed = {v.id for v in vehicles}
    held = [job for job in snapshot.accepted if job["driver"] in placed]
    jobs = held + snapshot.waiting
    stops = []
    for n, job in enumerate(jobs):
        fixed = job["driver"] if n < len(held) else None
        stops.append(
            Stop(
                id=job["id"],
                index=len(places),
                service_s=round(
                    workload.work_seconds(
                        job["service_type"], job["destination_lat"] is not None, snapshot.typical
                    )
                ),
                priority=PRIORITY.get(job["priority"], 1),
                # An accepted job is its driver's whatever their skills (a dispatcher chose).
                skills_needed=frozenset() if fixed else frozenset(job["required_skills"] or []),
                fixed_vehicle=fixed,
            )
        )
        places.append((job["pickup_lat"], job["pickup_lng"]))
    at = snapshot.at
    return Fleet(
        at=at,
        vehicles=vehicles,
        stops=stops,
        durations=await travel_seconds(tenant, places, at) if stops else [],
        names={d["id"]: d["name"] for d in snapshot.drivers},
        numbers={job["id"]: job["number"] for job in jobs},
        needs={job["id"]: frozenset(job["required_skills"] or []) for job in jobs},
    )


# --- the solver's process -----------------------------------------------------------------------

_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()


def _solver_pool() -> ProcessPoolExecutor:
    """This process's solver process (started on first use: forkserver, never a fork of a
    process with threads and an event loop)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("forkserver")
            )
        return _pool


def _discard(pool: ProcessPoolExecutor) -> None:
    """Stop a solver process that did not answer in time or died; the next plan starts one."""
    global _pool
    with _pool_lock:
        if _pool is pool:
            _pool = None
    for process in list((pool._processes or {}).values()):  # a stuck search never returns
        process.kill()
    pool.shutdown(wait=False, cancel_futures=True)


async def solve(
    vehicles: list[Vehicle],
    stops: list[Stop],
    durations: Durations,
    time_limit_s: float = TIME_LIMIT_S,
    grace_s: float = GRACE_S,
) -> Plan:
    """`plan_routes` in the solver process (a small problem only to the first local optimum);
    the greedy plan, made here, when that process does not answer within `time_limit_s` +
    `grace_s` or dies."""
    if not stops:  # nothing to plan (and no matrix to check the drivers' places against)
        return greedy_plan([], [], [])
    if not vehicles:
        return greedy_plan(vehicles, stops, durations)
    pool = _solver_pool()
    try:
        future = pool.submit(
            plan_routes,
            vehicles,
            stops,
            durations,
            time_limit_s=time_limit_s,
            first_solution_only=len(stops) < FULL_SEARCH_FROM,
        )
        return await asyncio.wait_for(asyncio.wrap_future(future), time_limit_s + grace_s)
    except (TimeoutError, BrokenProcessPool) as error:
        log.warning("the route solver gave no plan (%r): greedy instead", error)
        _discard(pool)
        return greedy_plan(vehicles, stops, durations)


# --- suggestions --------------------------------------------------------------------------------


def suggestions(fleet: Fleet, plan: Plan, sooner_s: int) -> list[Suggestion]:
    """What the plan suggests to dispatchers: moves of accepted jobs first (most time gained
    first), then the waiting requests in queue order, given or unserved."""
    return _reassignments(fleet, plan, sooner_s) + _waiting_requests(fleet, plan)


def _free_after(fleet: Fleet, plan: Plan, vehicle: Vehicle) -> tuple[int, int]:
    """Where and when `vehicle` is free after everything the plan gives them."""
    route = plan.routes.get(vehicle.id) or []
    if not route:
        return vehicle.start_index, vehicle.available_at_s
    by_id = {stop.id: stop for stop in fleet.stops}
    return by_id[route[-1].stop_id].index, route[-1].depart_s


def _reassignments(fleet: Fleet, plan: Plan, sooner_s: int) -> list[Suggestion]:
    free = {v.id: _free_after(fleet, plan, v) for v in fleet.vehicles}
    by_id = {stop.id: stop for stop in fleet.stops}
    moves = []  # (time gained, stop, holder, their planned stop, its place, other, arrival)
    for holder, route in plan.routes.items():
        for position, planned in enumerate(route):
            stop = by_id[planned.stop_id]
            if stop.fixed_vehicle is None:
                continue
            soonest = _soonest_other(fleet, free, stop, holder)
            if soonest is not None and planned.arrive_s - soonest[0] >= sooner_s:
                gain = planned.arrive_s - soonest[0]
                moves.append((gain, stop, holder, planned, position, soonest[1]))
    moves.sort(key=lambda move: -move[0])  # stable: ties in the plan's order
    found, taken = [], set()
    for gain, stop, holder, planned, position, other in moves:
        if other in taken:
            continue
        taken.add(other)
        arrive = planned.arrive_s - gain
        behind = f", after {_count(position, 'other job')}" if position else ""
        found.append(
            Suggestion(
                kind="reassign",
                request_id=stop.id,
                driver_id=other,
                from_driver_id=holder,
                arrive_s=arrive,
                sooner_s=gain,
                why=(
                    f"{fleet.names[other]} could be at #{fleet.numbers[stop.id]} in "
                    f"{_minutes(arrive)} min, {_minutes(gain)} min sooner than "
                    f"{fleet.names[holder]} (planned in {_minutes(planned.arrive_s)} min{behind})"
                ),
            )
        )
    return found


def _soonest_other(
    fleet: Fleet, free: dict[Hashable, tuple[int, int]], stop: Stop, holder: Hashable
) -> tuple[int, Hashable] | None:
    """The driver other than `holder`, skilled for `stop`, who could be there first after
    everything the plan gives them: (arrival, driver id)."""
    best: tuple[int, Hashable] | None = None
    for vehicle in fleet.vehicles:
        if vehicle.id == holder or not fleet.needs[stop.id] <= vehicle.skills:
            continue
        where, when = free[vehicle.id]
        drive = fleet.travel(where, stop.index)
        if drive is not None and (best is None or when + drive < best[0]):
            best = (when + drive, vehicle.id)
    return best


def _waiting_requests(fleet: Fleet, plan: Plan) -> list[Suggestion]:
    placed: dict[Hashable, tuple[Hashable, int, PlannedStop]] = {
        planned.stop_id: (driver, position, planned)
        for driver, route in plan.routes.items()
        for position, planned in enumerate(route)
    }
    vehicles = {v.id: v for v in fleet.vehicles}
    found = []
    for stop in fleet.stops:
        if stop.fixed_vehicle is not None:
            continue
        number = fleet.numbers[stop.id]
        if stop.id not in placed:
            found.append(Suggestion("unserved", stop.id, None, _unserved_why(fleet, stop)))
            continue
        driver, position, planned = placed[stop.id]
        if position:
            after = f", after {_count(position, 'planned stop')}"
        elif vehicles[driver].available_at_s:
            after = ", after their current job"
        else:
            after = ""
        found.append(
            Suggestion(
                kind="offer",
                request_id=stop.id,
                driver_id=driver,
                arrive_s=planned.arrive_s,
                why=(
                    f"the plan gives #{number} to {fleet.names[driver]}: there in "
                    f"{_minutes(planned.arrive_s)} min{after}"
                ),
            )
        )
    return found


def _unserved_why(fleet: Fleet, stop: Stop) -> str:
    number = fleet.numbers[stop.id]
    if not fleet.vehicles:
        return f"#{number}: no driver on shift"
    if not any(stop.skills_needed <= v.skills for v in fleet.vehicles):
        return f"#{number}: no driver on shift has {', '.join(sorted(stop.skills_needed))}"
    return f"#{number}: no driver on shift who has its skills can reach it"


def _minutes(seconds: int) -> str:
    return f"{seconds / 60:.0f}"


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}{'' if n == 1 else 's'}"


# --- storing and reading ------------------------------------------------------------------------


async def _store(
    tenant: TenantRef, fleet: Fleet, plan: Plan, advice: list[Suggestion], fresh: datetime
) -> int:
    """Store the plan unless one made since `fresh` is there (a racing re-plan's: under the
    dispatch lock, one of two racers sees the other's); the latest plan's id."""
    at = fleet.at
    async with tenant_transaction(tenant):
        await lock_dispatch(tenant)
        fresher = await engine.fetch(
            "SELECT id FROM fleet_plans WHERE created_at >= $1 ORDER BY created_at DESC, id DESC "
            "LIMIT 1",
            fresh,
        )
        if fresher:
            return int(fresher[0]["id"])
        rows = await engine.fetch(
            "INSERT INTO fleet_plans (created_at, solver, objective, travel_s, solve_ms, drivers, "
            "jobs) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            at,
            plan.solver,
            plan.objective,
            plan.travel_s,
            round(plan.solve_ms),
            len(fleet.vehicles),
            len(fleet.stops),
        )
        plan_id = int(rows[0]["id"])
        accepted = {stop.id for stop in fleet.stops if stop.fixed_vehicle is not None}
        await engine.executemany(
            "INSERT INTO fleet_plan_stops (plan_id, driver_id, seq, request_id, accepted, "
            "arrive_at, depart_at, travel_s) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            [
                (
                    plan_id,
                    driver,
                    seq,
                    p.stop_id,
                    p.stop_id in accepted,
                    at + timedelta(seconds=p.arrive_s),
                    at + timedelta(seconds=p.depart_s),
                    p.travel_s,
                )
                for driver, route in plan.routes.items()
                for seq, p in enumerate(route)
            ],
        )
        await engine.executemany(
            "INSERT INTO fleet_plan_suggestions (plan_id, kind, request_id, driver_id, "
            "from_driver_id, arrive_at, sooner_s, why) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            [
                (
                    plan_id,
                    s.kind,
                    s.request_id,
                    s.driver_id,
                    s.from_driver_id,
                    at + timedelta(seconds=s.arrive_s) if s.arrive_s is not None else None,
                    s.sooner_s,
                    s.why,
                )
                for s in advice
            ],
        )
        await engine.execute(
            "DELETE FROM fleet_plans WHERE created_at < $1 AND id <> $2", at - KEEP, plan_id
        )
    return plan_id


@dataclass(frozen=True)
class PlannedJob:
    request_id: int
    number: int
    priority: str
    accepted: bool  # the driver's accepted job (else a waiting request the plan gives them)
    arrive_at: datetime
    depart_at: datetime
    travel_s: int  # from the previous stop, or where the driver starts


@dataclass(frozen=True)
class DriverPlan:
    driver_id: int
    name: str
    stops: list[PlannedJob]


@dataclass(frozen=True)
class FleetPlan:
    """A stored plan: its header, each driver's planned stops, and the suggestions still
    standing (a request since offered, assigned or moved drops its own)."""

    id: int
    created_at: datetime
    solver: str
    objective: int
    travel_s: int
    solve_ms: int
    drivers: int
    jobs: int
    routes: list[DriverPlan]
    suggestions: list[SuggestionRow]


_STOPS = (
    "SELECT s.driver_id, d.name, s.request_id, r.number, r.priority, s.accepted, s.arrive_at, "
    "s.depart_at, s.travel_s FROM fleet_plan_stops s JOIN drivers d ON d.id = s.driver_id "
    "JOIN service_requests r ON r.id = s.request_id WHERE s.plan_id = $1 "
    "ORDER BY s.driver_id, s.seq"
)
# A plan's suggestions still standing: the job still with the driver it would move from, the
# waiting request still waiting.
_SUGGESTIONS = (
    f"SELECT {SuggestionRow.columns('fleet_plan_suggestions')} FROM fleet_plan_suggestions "
    "JOIN service_requests r ON r.id = fleet_plan_suggestions.request_id "
    "WHERE fleet_plan_suggestions.plan_id = $1 AND CASE fleet_plan_suggestions.kind "
    "WHEN 'reassign' THEN r.status = 'assigned' "
    "AND r.driver = fleet_plan_suggestions.from_driver_id "
    "ELSE r.status = 'pending' AND NOT EXISTS "
    "(SELECT 1 FROM offers o WHERE o.request_id = r.id AND o.status = 'open') END"
)
_STANDING = _SUGGESTIONS + " ORDER BY fleet_plan_suggestions.id"
_STANDING_FOR = _SUGGESTIONS + " AND fleet_plan_suggestions.request_id = $2"
_LATEST = "SELECT id FROM fleet_plans ORDER BY created_at DESC, id DESC LIMIT 1"


async def latest_plan(tenant: TenantRef) -> FleetPlan | None:
    """The company's latest stored plan, None before the first."""
    async with tenant_transaction(tenant):
        header = await engine.fetch(
            "SELECT id, created_at, solver, objective, travel_s, solve_ms, drivers, jobs "
            "FROM fleet_plans ORDER BY created_at DESC, id DESC LIMIT 1"
        )
        if not header:
            return None
        stops = await engine.fetch(_STOPS, header[0]["id"])
        standing = await engine.fetch(_STANDING, header[0]["id"])
    routes: dict[int, DriverPlan] = {}
    for row in stops:
        route = routes.setdefault(row["driver_id"], DriverPlan(row["driver_id"], row["name"], []))
        route.stops.append(
            PlannedJob(
                request_id=row["request_id"],
                number=row["number"],
                priority=row["priority"],
                accepted=row["accepted"],
                arrive_at=row["arrive_at"],
                depart_at=row["depart_at"],
                travel_s=row["travel_s"],
            )
        )
    return FleetPlan(
        **dict(header[0]),
        routes=list(routes.values()),
        suggestions=[SuggestionRow.of(row) for row in standing],
    )


async def fleet_plan(tenant: TenantRef, actor: Actor) -> FleetPlan | None:
    """The latest plan, for dispatchers."""
    require(actor, "requests.view")
    return await latest_plan(tenant)


async def replan_fleet(tenant: TenantRef, actor: Actor) -> FleetPlan:
    """A dispatcher re-plans the fleet now (whatever `replan_minutes` says)."""
    require(actor, "requests.assign")
    await replan(tenant)
    plan = await latest_plan(tenant)
    assert plan is not None  # just stored, or a racing re-plan's
    return plan


async def apply_suggestion(tenant: TenantRef, actor: Actor, request_id: int) -> Decision:
    """A dispatcher takes the latest plan's suggestion for a request in one step: an OFFER is
    offered to the plan's driver; a REASSIGN takes the job back from its driver (to `pending`,
    reason `reassigned`) and offers it to the driver who gets there sooner, who may still
    decline (the engine then offers it on, first in line). Checked again under the dispatch
    lock: a suggestion overtaken since (the request offered, assigned, started) is refused and
    nothing changes."""
    require(actor, "requests.assign")
    settings, _ = await read_settings(tenant)
    suggestion = await _standing(tenant, request_id)
    if suggestion.driver_id is None:
        raise Conflict("unserved", suggestion.why, "request_id")
    at = now()
    # The maps plugin is asked before the lock (see `offers.offer_by_hand`).
    travel = await offers.travel_to(tenant, request_id, suggestion.driver_id, at)
    async with tenant_transaction(tenant):
        await lock_dispatch(tenant)
        if await _standing(tenant, request_id) != suggestion:
            raise Conflict(
                "suggestion_overtaken",
                f"the plan's suggestion for request {suggestion.number} no longer stands",
                "request_id",
            )
        if suggestion.kind == "reassign":
            current = await engine.fetch(
                f"SELECT {RequestRow.columns()} FROM service_requests WHERE id = $1 FOR UPDATE",
                request_id,
            )
            await transition_in_transaction(
                RequestRow.of(current[0]),
                "pending",
                actor,
                reason_code="reassigned",
                note=suggestion.why,
            )
        return await offers.offer_in_transaction(
            actor,
            request_id,
            suggestion.driver_id,
            travel,
            settings,
            at,
            because=f", as the fleet plan suggested: {suggestion.why}",
        )


async def _standing(tenant: TenantRef, request_id: int) -> SuggestionRow:
    """The latest plan's standing suggestion for a request."""
    async with tenant_transaction(tenant):
        latest = await engine.fetch(_LATEST)
        rows = await engine.fetch(_STANDING_FOR, latest[0]["id"], request_id) if latest else []
    if not rows:
        raise NotFound(
            "no_suggestion",
            "the latest fleet plan suggests nothing (still standing) for this request",
            "request_id",
        )
    return SuggestionRow.of(rows[0])
