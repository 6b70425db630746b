"""A day in a synthetic city, driven through the real dispatch engine, Postgres and Redis.

Each run creates a company of its own, its drivers and their shifts, and plays the demand as a
discrete-event simulation: a request is created through `service_requests.create_request`; the
engine's `sweep` (what the workers run on every event and every second) makes the offers; each
simulated driver answers through `offers.respond_to_offer` after the delay their behaviour gives
(too late, and the answer is refused as lapsed); an accepted job is driven with the city's true
travel time (the estimate times the trip's fixed noise), worked on scene, and completed through
the request's real transitions, the driver's position moved through `fleet.set_position`.

Time: the engine reads the business clock (`patone.core.runtime.clock`), which here is simulated
time that jumps from event to event but also runs on, at real speed, while the engine works. So idle
minutes cost nothing, and the engine's own processing time counts in its figures (an emergency's
request-to-offer time is the real time the engine took).

The engine sees the city only through the maps plugin (`SimulatedMaps`: roads and hour-of-day
speeds, not the noise). The greedy baseline is the same engine set to offer the nearest free
driver (strategy `nearest`, no pre-emption), on the same demand, noise, behaviour and seed.
"""

from __future__ import annotations

import heapq
import itertools
import math
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from patone.core.common.permissions import DEFAULT_GRANTS, SYSTEM, Actor
from patone.core.dispatch import autodispatch, fleet, offers, replan, staging
from patone.core.dispatch.settings import DispatchSettings, update_dispatch_settings
from patone.core.domain import customers, drivers, service_requests
from patone.core.domain.service_requests import PastEvent, PastRequest
from patone.core.runtime.clock import use_clock
from patone.core.runtime.db import engine
from patone.core.runtime.errors import UserError
from patone.platform import provisioning
from patone.simulation.behaviour import DriverBehaviour
from patone.simulation.city import City, Point
from patone.simulation.demand import DriverSpec, RequestSpec
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo

START = datetime(2026, 12, 7, 6, 0, tzinfo=ZoneInfo("Europe/Berlin"))  # a Monday, 06:00
ASSIGNED_WITHIN_S = 120
SAFETY_SWEEP_S = 30.0  # the workers sweep every second; between events this is enough here
DRAIN_S = 4 * 3600  # after the last call, jobs still open may finish for this long
# A working shift. Load balance is a figure of whole shifts: in a shorter run each driver does
# a job or two, where one job more reads as 50-500 % off the mean, whatever the engine does.
SHIFT_HOURS = 8.0
CUSTOMERS = 40
# Drivers are told where to wait as often as the workers tell them (`staging.STAGE_MINUTES`).
STAGING_EVERY_TICKS = round(staging.STAGE_MINUTES * 60 / SAFETY_SWEEP_S)


class SimClock:
    """Simulated business time: jumps to each event, and runs at real speed in between (so the
    engine's own work counts), or, `frozen`, stands still in between (so a run repeats exactly
    whatever else the machine is doing, and settings can be compared run against run)."""

    def __init__(self, start: datetime, frozen: bool = False) -> None:
        self.virtual = start
        self.mark = time.monotonic()
        self.frozen = frozen

    def __call__(self) -> datetime:
        if self.frozen:
            return self.virtual
        return self.virtual + timedelta(seconds=time.monotonic() - self.mark)

    def advance_to(self, at: datetime) -> None:
        """Move to `at` unless the engine's work already took the clock past it."""
        if at > self():
            self.virtual, self.mark = at, time.monotonic()


@dataclass
class Job:
    """What happened to one request in one run."""

    spec: RequestSpec
    request_id: int
    created_at: datetime
    offers: int = 0
    first_offer_at: datetime | None = None
    accepted_at: datetime | None = None
    driver: str | None = None
    eta_shown: datetime | None = None
    departed_at: datetime | None = None
    travel_s: float | None = None
    arrived_at: datetime | None = None
    completed_at: datetime | None = None
    preempted: int = 0  # times an emergency took its driver before they left


@dataclass
class Driver:
    spec: DriverSpec
    db_id: int
    actor: Actor
    at: Point
    on_shift: bool = False
    jobs_done: int = 0
    leaving: bool = False
    busy_with: int | None = None  # request id
    # Driving to a waiting place the engine suggested: (from, to, left at, true seconds).
    moving: tuple[Point, Point, datetime, float] | None = None
    moves: int = 0
    offers: int = 0  # offers the engine sent them (each answered or not as their draws say)


@dataclass
class Run:
    """One run's jobs and drivers, and the figures made from them."""

    strategy: str
    jobs: dict[int, Job] = field(default_factory=dict)
    drivers: dict[int, Driver] = field(default_factory=dict)
    hours: float = 0.0
    wall_s: float = 0.0

    def full_shift(self) -> list[Driver]:
        """The drivers who worked the whole run (whom load balancing is measured among), when
        the run is at least a shift long (`SHIFT_HOURS`); none in a shorter run."""
        if self.hours < SHIFT_HOURS:
            return []
        return [
            d
            for d in sorted(self.drivers.values(), key=lambda d: d.spec.id)
            if d.spec.shift_start_s <= 0 and d.spec.shift_end_s >= self.hours * 3600
        ]

    def full_shift_jobs(self) -> list[int]:
        """Jobs done by each driver who worked the whole run, by driver."""
        return [d.jobs_done for d in self.full_shift()]

    def full_shift_offers(self) -> list[int]:
        """Offers sent to each driver who worked the whole run, in the same order: a driver
        who ends the day behind after many offers let them lapse or declined them."""
        return [d.offers for d in self.full_shift()]

    def figures(self) -> dict[str, float | None]:
        jobs = list(self.jobs.values())
        within = [
            j
            for j in jobs
            if j.accepted_at is not None
            and (j.accepted_at - j.created_at).total_seconds() <= ASSIGNED_WITHIN_S
        ]
        emergency = sorted(
            (j.first_offer_at - j.created_at).total_seconds()
            for j in jobs
            if j.spec.priority == "emergency" and j.first_offer_at is not None
        )
        travel = [j.travel_s / 60 for j in jobs if j.travel_s is not None]
        eta_errors = [
            abs((j.eta_shown - j.arrived_at).total_seconds()) / 60
            for j in jobs
            if j.eta_shown is not None and j.arrived_at is not None
        ]
        waits = [
            (j.arrived_at - j.created_at).total_seconds() / 60
            for j in jobs
            if j.arrived_at is not None
        ]
        full = self.full_shift_jobs()
        mean_jobs = statistics.fmean(full) if full else 0.0
        return {
            "auto_assigned_within_2min": len(within) / len(jobs) if jobs else None,
            "emergency_offer_p50_s": _percentile(emergency, 50),
            "emergency_offer_p99_s": _percentile(emergency, 99),
            "load_spread": (
                max(abs(n - mean_jobs) for n in full) / mean_jobs if full and mean_jobs else None
            ),
            "load_spread_floor": even_split_spread(full),
            "full_shift_job_range": float(max(full) - min(full)) if full else None,
            "travel_time_min": statistics.fmean(travel) if travel else None,
            "eta_mae_min": statistics.fmean(eta_errors) if eta_errors else None,
            "wait_to_arrival_min": statistics.fmean(waits) if waits else None,
            "completed": float(sum(1 for j in jobs if j.completed_at is not None)),
            "offers_per_request": (statistics.fmean(j.offers for j in jobs) if jobs else None),
            "preempted": float(sum(j.preempted for j in jobs)),
        }


def even_split_spread(counts: list[int]) -> float | None:
    """The load spread of the most even split of the same jobs among the same drivers (each at
    the floor or the ceiling of the mean): the least any assignment could read. Counts are
    whole jobs, so at eight jobs a shift one job is 12 % of the mean: a mean of 7.9 leaves the
    drivers at 7 more than 10 % below it however evenly the jobs are spread."""
    if not counts or not sum(counts):
        return None
    mean = statistics.fmean(counts)
    if sum(counts) % len(counts) == 0:
        return 0.0
    return max(mean - math.floor(mean), math.ceil(mean) - mean) / mean


def _percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[min(98, int(p) - 1)]


DISPATCHER = Actor(
    kind="user",
    id="sim-dispatcher",
    role="dispatcher",
    permissions=frozenset(DEFAULT_GRANTS["dispatcher"]),
)


def driver_actor(driver_id: int) -> Actor:
    return Actor(
        kind="user",
        id=f"sim-driver-{driver_id}",
        role="driver",
        permissions=frozenset(DEFAULT_GRANTS["driver"]),
        driver_id=driver_id,
    )


class Simulation:
    """One run of the demand through the engine, in a company of its own."""

    def __init__(
        self,
        *,
        city: City,
        fleet: list[DriverSpec],
        demand: list[RequestSpec],
        behaviour: DriverBehaviour,
        strategy: str,
        hours: float,
        on_progress: Callable[[float], None] | None = None,
        settings: dict[str, Any] | None = None,
        history: list[tuple[datetime, RequestSpec]] | None = None,
        frozen_clock: bool = False,
    ) -> None:
        self.city = city
        self.fleet = fleet
        self.demand = demand
        self.behaviour = behaviour
        self.strategy = strategy
        self.hours = hours
        self.on_progress = on_progress
        self.history = history or []
        # The greedy baseline: the nearest free driver, nothing else (no pre-emption, no queue, each
        # driver offered a request once).
        self.dispatch_settings: dict[str, Any] = (
            {
                "strategy": "nearest",
                "preempt": False,
                "queue_within_minutes": 0,
                "staging": False,
                "lapsed_reoffers": 0,
            }
            if strategy == "nearest"
            else {"strategy": strategy, **(settings or {})}
        )
        self.clock = SimClock(START, frozen_clock)
        self.events: list[tuple[float, int, str, Any]] = []
        self.counter = itertools.count()
        self.run = Run(strategy=strategy, hours=hours)
        self.customers: list[int] = []
        self.tenant: TenantInfo | None = None
        self.by_request: dict[int, Job] = {}
        self.attempts: dict[int, int] = {}
        self.staging = bool(self.dispatch_settings.get("staging", True))
        # The workers' periodic fleet re-plan (it only suggests, so it changes no figure): only
        # when the run's settings name `replan_minutes`, as a second a plan slows the run.
        self.replans = "replan_minutes" in self.dispatch_settings
        self.ticks = 0
        self.settings = DispatchSettings()  # the run's company's, once set up

    # --- scheduling --------------------------------------------------------------------------

    def at(self, seconds: float, kind: str, data: Any = None) -> None:
        heapq.heappush(self.events, (seconds, next(self.counter), kind, data))

    def now_s(self) -> float:
        return (self.clock() - START).total_seconds()

    # --- the run -----------------------------------------------------------------------------

    async def execute(self, tenant: TenantInfo) -> Run:
        """Play the whole demand in `tenant` (which must be new and empty)."""
        self.tenant = tenant
        started = time.monotonic()
        with use_clock(self.clock):
            await self._set_up()
            for spec in self.demand:
                self.at(spec.at_s, "call", spec)
            for d in self.fleet:
                self.at(max(0.0, d.shift_start_s), "shift_start", d.id)
                self.at(d.shift_end_s, "shift_end", d.id)
            end = self.hours * 3600 + DRAIN_S
            tick = 0.0
            while tick <= self.hours * 3600:
                self.at(tick, "tick")
                tick += SAFETY_SWEEP_S
            while self.events:
                seconds, _, kind, data = heapq.heappop(self.events)
                if seconds > end:
                    break
                self.clock.advance_to(START + timedelta(seconds=seconds))
                await getattr(self, f"_on_{kind}")(data)
                if self.on_progress is not None:
                    self.on_progress(min(seconds, self.hours * 3600))
        self.run.wall_s = time.monotonic() - started
        return self.run

    async def _set_up(self) -> None:
        tenant = self._tenant()
        self.settings = await update_dispatch_settings(tenant, SYSTEM, self.dispatch_settings)
        async with tenant_transaction(tenant):
            await engine.execute(
                "UPDATE settings SET value = '\"Europe/Berlin\"' WHERE key = 'time_zone'"
            )
        await self._record_history()
        for n in range(CUSTOMERS):
            created = await customers.create_customer(
                tenant, SYSTEM, {"name": f"Motorist {n + 1}", "phone": f"+1415555{n:04d}"}
            )
            self.customers.append(created.id)
        for spec in self.fleet:
            driver = await drivers.create_driver(
                tenant, SYSTEM, {"name": spec.name, "skills": list(spec.skills)}
            )
            await drivers.add_shift(
                tenant,
                SYSTEM,
                driver.id,
                {
                    "starts_at": START + timedelta(seconds=spec.shift_start_s),
                    "ends_at": START + timedelta(seconds=spec.shift_end_s),
                },
            )
            self.run.drivers[driver.id] = Driver(
                spec=spec, db_id=driver.id, actor=driver_actor(driver.id), at=spec.home
            )

    async def _record_history(self) -> None:
        """The company's earlier days: their calls as completed requests (what staging learns
        where calls come from), written as history (`service_requests.insert_history`), not
        played."""
        if not self.history:
            return
        async with tenant_transaction(self._tenant()):
            customer = await engine.fetch(
                "INSERT INTO customers (name, created_at, updated_at) "
                "VALUES ('Earlier motorists', $1, $1) RETURNING id",
                START,
            )
            who = customer[0]["id"]
            types = {
                row["code"]: row["id"]
                for row in await engine.fetch("SELECT id, code FROM service_types")
            }
            await service_requests.insert_history(
                [_past_call(who, types[spec.service_type], spec, at) for at, spec in self.history]
            )

    def _tenant(self) -> TenantInfo:
        assert self.tenant is not None
        return self.tenant

    def _driver(self, sim_id: str) -> Driver:
        return next(d for d in self.run.drivers.values() if d.spec.id == sim_id)

    async def _move(self, driver: Driver, point: Point) -> None:
        driver.at = point
        await fleet.set_position(
            self._tenant(), SYSTEM, driver.db_id, {"lat": point[0], "lng": point[1]}
        )

    async def _engine(self) -> None:
        """Run the engine as the workers would after an event, and hand new offers to the
        drivers: each answers after its behaviour's delay; each deadline wakes the engine."""
        report = await autodispatch.sweep(self._tenant())
        self._hand_out(report.decisions)

    def _hand_out(self, decisions: list[offers.Decision]) -> None:
        for decision in decisions:
            if decision.outcome != "offered" or decision.offer_id is None:
                continue
            job = self.by_request[decision.request_id]
            driver = self.run.drivers[decision.driver_id or 0]
            job.offers += 1
            driver.offers += 1
            sent = self.clock()
            if job.first_offer_at is None:
                job.first_offer_at = sent
            attempt = self.attempts.get(job.request_id, 0) + 1
            self.attempts[job.request_id] = attempt
            accepts, after_s = self.behaviour.respond(driver.spec.id, f"{job.spec.id}:{attempt}")
            offset = (sent - START).total_seconds()
            self.at(offset + after_s, "answer", (decision.offer_id, driver.db_id, accepts))
            deadline = (
                self.settings.emergency_offer_seconds
                if job.spec.priority == "emergency"
                else self.settings.offer_seconds
            )
            self.at(offset + deadline + 0.001, "sweep")

    # --- events ------------------------------------------------------------------------------

    async def _on_sweep(self, _: Any) -> None:
        await self._engine()

    async def _on_tick(self, _: Any) -> None:
        """The workers' periodic sweep, and the dispatcher on duty: a request the engine
        flagged (its offers came to nothing) is sent back to the engine with a fresh count."""
        async with tenant_transaction(self._tenant()):
            flagged = await engine.fetch(
                "SELECT id FROM service_requests WHERE status = 'pending' AND needs_dispatcher"
            )
        for row in flagged:
            again = await autodispatch.dispatch_again(self._tenant(), DISPATCHER, row["id"])
            self._hand_out([again])
        await self._follow_staging()
        await self._engine()
        if self.replans:
            await replan.replan(self._tenant(), when_due=True)

    async def _follow_staging(self) -> None:
        """Idle drivers drive to where their phones tell them to wait (when the company uses
        staging), and their phones ping on the way."""
        if not self.staging:
            return
        for driver in self.run.drivers.values():
            if driver.moving is not None:
                await self._move(driver, self._where(driver))
        self.ticks += 1
        if self.ticks % STAGING_EVERY_TICKS == 0:
            await self._stage()

    async def _stage(self) -> None:
        """The workers' staging round (`staging.publish_moves`, the call the periodic job
        makes): a driver told of a new waiting place drives there; one told nothing new keeps
        doing what they were doing (a cleared suggestion rings no phone, so a driver on the
        way to it drives on)."""
        at = self.clock()
        for move in await staging.publish_moves(self._tenant(), at, "Europe/Berlin"):
            driver = self.run.drivers[move.driver_id]
            if driver.busy_with is not None or not driver.on_shift:
                continue
            origin, target = self._where(driver), (move.lat, move.lng)
            driver.moves += 1
            true_s = self.city.true_duration(
                f"stage:{driver.spec.id}:{driver.moves}", origin, target, at
            )
            driver.moving = (origin, target, at, true_s)
            self.at(self.now_s() + true_s, "staged", (driver.db_id, driver.moves))

    def _where(self, driver: Driver) -> Point:
        """Where the driver is now (on the way to a waiting place, or where they stopped)."""
        if driver.moving is None:
            return driver.at
        origin, target, left, true_s = driver.moving
        elapsed = (self.clock() - left).total_seconds()
        return self.city.position_at(origin, target, left, elapsed, true_s)

    async def _on_staged(self, data: tuple[int, int]) -> None:
        driver_id, move = data
        driver = self.run.drivers[driver_id]
        if driver.moving is not None and driver.moves == move:
            target = driver.moving[1]
            driver.moving = None
            await self._move(driver, target)

    async def _on_call(self, spec: RequestSpec) -> None:
        data: dict[str, Any] = {
            "customer_id": self.customers[int(spec.id.rsplit("-", 1)[-1]) % len(self.customers)],
            "service_type": spec.service_type,
            "priority": spec.priority,
            "pickup": {"lat": spec.lat, "lng": spec.lng, "address": spec.id},
        }
        if spec.destination is not None:
            data["destination"] = {"lat": spec.destination[0], "lng": spec.destination[1]}
        created = await service_requests.create_request(self._tenant(), SYSTEM, data)
        job = Job(spec=spec, request_id=created.id, created_at=created.created_at)
        self.run.jobs[created.id] = job
        self.by_request[created.id] = job
        await self._engine()

    async def _on_answer(self, data: tuple[int, int, bool]) -> None:
        offer_id, driver_id, accepts = data
        driver = self.run.drivers[driver_id]
        try:
            response = await offers.respond_to_offer(
                self._tenant(), driver.actor, offer_id, accept=accepts
            )
        except UserError:  # lapsed, withdrawn, or the driver went off shift meanwhile
            await self._engine()
            return
        if not accepts or response.request is None:
            await self._engine()
            return
        job = self.by_request[response.request.id]
        job.accepted_at = response.offer.responded_at
        job.driver = driver.spec.id
        job.eta_shown = response.request.eta_at
        if response.preempted is not None:
            taken = self.by_request[response.preempted]
            taken.driver = None
            taken.preempted += 1
        await self._depart(driver, job)
        await self._engine()

    async def _depart(self, driver: Driver, job: Job) -> None:
        if driver.busy_with is not None:  # finishing another job first: leaves when done
            return
        driver.busy_with = job.request_id
        if driver.moving is not None:  # called away on the way to a waiting place
            driver.at, driver.moving = self._where(driver), None
        await service_requests.transition(self._tenant(), driver.actor, job.request_id, "en_route")
        job.departed_at = self.clock()
        scene = (job.spec.lat, job.spec.lng)
        job.travel_s = self.city.true_duration(
            f"{job.spec.id}:to-scene", driver.at, scene, job.departed_at
        )
        self.at(self.now_s() + job.travel_s, "arrive", (driver.db_id, job.request_id))

    async def _on_arrive(self, data: tuple[int, int]) -> None:
        driver_id, request_id = data
        driver, job = self.run.drivers[driver_id], self.by_request[request_id]
        tenant = self._tenant()
        await self._move(driver, (job.spec.lat, job.spec.lng))
        job.arrived_at = self.clock()
        await service_requests.transition(tenant, driver.actor, request_id, "on_scene")
        await service_requests.transition(tenant, driver.actor, request_id, "in_progress")
        work = job.spec.on_scene_s
        if job.spec.destination is not None:
            work += self.city.true_duration(
                f"{job.spec.id}:tow",
                (job.spec.lat, job.spec.lng),
                job.spec.destination,
                self.clock() + timedelta(seconds=job.spec.on_scene_s),
            )
        self.at(self.now_s() + work, "done", (driver_id, request_id))

    async def _on_done(self, data: tuple[int, int]) -> None:
        driver_id, request_id = data
        driver, job = self.run.drivers[driver_id], self.by_request[request_id]
        tenant = self._tenant()
        if job.spec.destination is not None:
            await self._move(driver, job.spec.destination)
        await service_requests.transition(tenant, driver.actor, request_id, "completed")
        job.completed_at = self.clock()
        driver.jobs_done += 1
        driver.busy_with = None
        queued = await self._next_assigned(driver)
        if queued is not None:
            await self._depart(driver, self.by_request[queued])
        elif driver.leaving:
            await fleet.update_driver(tenant, SYSTEM, driver.db_id, {"status": "off_duty"})
        await self._engine()

    async def _next_assigned(self, driver: Driver) -> int | None:
        async with tenant_transaction(self._tenant()):
            rows = await engine.fetch(
                "SELECT id FROM service_requests WHERE driver = $1 AND status = 'assigned' "
                "ORDER BY assigned_at LIMIT 1",
                driver.db_id,
            )
        return rows[0]["id"] if rows else None

    async def _on_shift_start(self, sim_id: str) -> None:
        driver = self._driver(sim_id)
        await self._move(driver, driver.spec.home)
        await fleet.update_driver(self._tenant(), SYSTEM, driver.db_id, {"status": "available"})
        driver.on_shift = True
        await self._engine()

    async def _on_shift_end(self, sim_id: str) -> None:
        driver = self._driver(sim_id)
        driver.on_shift = False
        if driver.busy_with is None:
            await fleet.update_driver(self._tenant(), SYSTEM, driver.db_id, {"status": "off_duty"})
        else:
            driver.leaving = True


async def run_in_new_company(simulation: Simulation, label: str, keep: bool) -> Run:
    """Run `simulation` in a company made for it (purged afterwards unless `keep`). The
    company is a simulation's: a `patone serve` on the same data works nothing of it (its
    relay, scheduler and workers would run the engine on the real clock beside this one)."""
    slug = f"sim-{label}-{uuid.uuid4().hex[:6]}"
    tenant = await provisioning.create_tenant(slug, f"Simulation {label}", simulation=True)
    try:
        return await simulation.execute(tenant)
    finally:
        if not keep:
            await provisioning.delete_tenant(slug, reason="simulation finished")
            await provisioning.purge_tenant(slug, force=True)


_LIFE = ("pending", "assigned", "en_route", "on_scene", "in_progress", "completed")


def _past_call(customer: int, service_type: int, spec: RequestSpec, at: datetime) -> PastRequest:
    """An earlier day's call as a request completed at once, by nobody in particular."""
    steps = zip((None, *_LIFE[:-1]), _LIFE, strict=True)
    return PastRequest(
        customer=customer,
        vehicle=None,
        service_type=service_type,
        priority=spec.priority,
        source="admin",
        pickup_lat=spec.lat,
        pickup_lng=spec.lng,
        pickup_address="",
        destination_lat=None,
        destination_lng=None,
        destination_address="",
        notes="",
        quoted_price=0,
        currency="EUR",
        created_by="history",
        driver=None,
        events=tuple(PastEvent(old, new, "system", "history", at) for old, new in steps),
    )
