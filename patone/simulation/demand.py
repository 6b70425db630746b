"""Who calls, when, where and for what; and the drivers who answer.

Requests follow the demo's hourly curve (quiet nights, peaks in the morning and evening rush
hours), its service mix and its median minutes of work on scene. Places are 40 % around a few
hotspots (normal clusters: a station, a motorway junction, a shopping street) and 60 % anywhere
in the city. Towing takes the car to one of the city's workshops.

Fixed assumptions: exactly 5 % of requests (rounded half up) are emergencies; demand is sized to
keep the fleet about 70 % busy at peak (`TARGET_PEAK_UTILISATION`). The CLI takes the request
count, so `peak_utilisation` estimates how busy the given demand keeps the fleet (for the
runner to print as an assumption check) and `size_demand_for_utilisation` gives the count that
meets the target.

Most drivers (`FULL_SHIFT_SHARE`) work the whole run, since load balancing is measured among
them; the rest work an early or a late shift, overlapping in the middle. Skills follow the
demo's fleet, topped up so every service type has enough drivers who may do it.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from patone.core.runtime.errors import UserError
from patone.core.tables.requests import Priority
from patone.demo import company as demo
from patone.simulation.city import City, Point

EMERGENCY_SHARE = 0.05  # a fixed assumption
TARGET_PEAK_UTILISATION = 0.70  # a fixed assumption
HOTSPOT_SHARE = 0.4
HOTSPOTS = 4
HOTSPOT_SPREAD_M = (600.0, 1500.0)
WORKSHOPS = 8
ON_SCENE_SIGMA = 0.35  # log-normal spread of the work on scene around the demo's median
# Skills each default service type needs (tenant_0004 migration's `required_skills`).
REQUIRED_SKILLS: dict[str, tuple[str, ...]] = {
    "towing": ("tow",),
    "lockout": ("lockout",),
    "winching": ("winch",),
    "jump_start": (),
    "flat_tyre": (),
    "fuel_delivery": (),
}
FULL_SHIFT_SHARE = 0.8
# Drivers who hold a skill, at least, per share of demand that needs it: a job needing a rare
# skill must not wait for the one driver who has it.
SKILL_COVER = 1.5
UTILISATION_WINDOW_S = 3600.0
UTILISATION_STEP_S = 900.0


@dataclass(frozen=True)
class RequestSpec:
    """A call for help: `at_s` seconds after the start of the run."""

    id: str
    at_s: float
    lat: float
    lng: float
    priority: str  # low | normal | high | emergency
    service_type: str  # a default service type code
    destination: Point | None  # where a towed car goes; None for other services
    on_scene_s: float  # work at the scene (for towing: loading the car, not the drive)


@dataclass(frozen=True)
class DriverSpec:
    """A driver and their shift, in seconds after the start of the run."""

    id: str
    name: str
    home: Point
    shift_start_s: float
    shift_end_s: float
    skills: tuple[str, ...]

    def can_do(self, service_type: str) -> bool:
        return set(REQUIRED_SKILLS.get(service_type, ())) <= set(self.skills)


def _check(value: float, field: str, minimum: float) -> None:
    if value < minimum:
        raise UserError("invalid", f"{field} must be at least {minimum:g}", field)


def emergencies_for(requests: int) -> int:
    """How many of `requests` are emergencies: 5 %, rounded half up."""
    return math.floor(requests * EMERGENCY_SHARE + 0.5)


def _local(city: City, start: datetime) -> datetime:
    return start.astimezone(city.time_zone) if start.tzinfo is not None else start


def _hour_segments(city: City, hours: float, start: datetime) -> tuple[list[float], list[float]]:
    """Start (s) of each piece of the run within one local hour, and the cumulative weight of
    the demo's hourly curve up to the end of each piece."""
    local = _local(city, start)
    end = hours * 3600
    starts: list[float] = []
    weights: list[float] = []
    at = 0.0
    while at < end:
        clock = local + timedelta(seconds=at)
        to_next_hour = 3600 - (clock.minute * 60 + clock.second + clock.microsecond / 1e6)
        length = min(to_next_hour, end - at)
        starts.append(at)
        weights.append(demo.HOUR_WEIGHTS[clock.hour] * length)
        at += length
    return starts, list(itertools.accumulate(weights))


def generate_demand(
    city: City, seed: int, requests: int, hours: float, start: datetime
) -> list[RequestSpec]:
    """`requests` calls over `hours` from `start` (local time of the city when naive), sorted by
    time, the same for the same arguments."""
    _check(requests, "requests", 1)
    _check(hours, "hours", 0.25)
    rng = random.Random(f"{seed}:demand")
    starts, cumulative = _hour_segments(city, hours, start)
    ends = [*starts[1:], hours * 3600]
    times = []
    for _ in range(requests):
        k = bisect.bisect_right(cumulative, rng.random() * cumulative[-1])
        k = min(k, len(starts) - 1)
        times.append(rng.uniform(starts[k], ends[k]))
    times.sort()
    # Hotspots and workshops belong to the city (a station, a junction, a garage do not move from
    # day to day); the calls of each day are drawn by the demand's seed.
    places = random.Random(f"{city.seed}:places")
    hotspots = [
        (city.random_point(places), places.uniform(*HOTSPOT_SPREAD_M), places.uniform(0.5, 1.5))
        for _ in range(HOTSPOTS)
    ]
    hotspot_weights = list(itertools.accumulate(w for *_, w in hotspots))
    workshops = [city.random_point(places) for _ in range(WORKSHOPS)]
    emergencies = set(rng.sample(range(requests), emergencies_for(requests)))
    priorities = [(p.value, w) for p, w in demo.PRIORITY_MIX if p != Priority.emergency]
    priority_values, priority_weights = zip(*priorities, strict=True)
    priority_cumulative = list(itertools.accumulate(priority_weights))
    services = list(demo.SERVICE_MIX)
    service_cumulative = list(itertools.accumulate(demo.SERVICE_MIX.values()))
    specs = []
    for n, at_s in enumerate(times):
        if rng.random() < HOTSPOT_SHARE:
            centre, spread, _ = rng.choices(hotspots, cum_weights=hotspot_weights)[0]
            lat, lng = city.random_point(rng, near=centre, spread_m=spread)
        else:
            lat, lng = city.random_point(rng)
        service = rng.choices(services, cum_weights=service_cumulative)[0]
        priority = (
            Priority.emergency.value
            if n in emergencies
            else rng.choices(priority_values, cum_weights=priority_cumulative)[0]
        )
        destination = None
        if service == "towing":
            nearby = sorted(workshops, key=lambda w: (w[0] - lat) ** 2 + (w[1] - lng) ** 2)
            destination = rng.choice(nearby[:3])
        median = demo.WORK_MINUTES[service] * 60
        on_scene = median * math.exp(rng.gauss(0.0, ON_SCENE_SIGMA))
        specs.append(
            RequestSpec(
                id=f"req-{n + 1:05d}",
                at_s=round(at_s, 3),
                lat=round(lat, 6),
                lng=round(lng, 6),
                priority=priority,
                service_type=service,
                destination=destination,
                on_scene_s=round(min(max(on_scene, 0.3 * median), 3 * median), 1),
            )
        )
    return specs


def generate_fleet(city: City, seed: int, drivers: int, hours: float) -> list[DriverSpec]:
    """`drivers` drivers for a run of `hours`: most work all of it, the others an early or a
    late shift (each about 60 % of the run) that overlap in the middle."""
    _check(drivers, "drivers", 1)
    _check(hours, "hours", 0.25)
    rng = random.Random(f"{seed}:fleet")
    end = hours * 3600
    full = max(1, math.ceil(drivers * FULL_SHIFT_SHARE))
    skills = [set(demo.driver_skills(rng)) for _ in range(drivers)]
    # Top up each skill among the whole-run drivers, in proportion to the demand needing it.
    total = sum(demo.SERVICE_MIX.values())
    for service, needed in REQUIRED_SKILLS.items():
        share = demo.SERVICE_MIX.get(service, 0) / total
        for skill in needed:
            want = min(full, max(1, math.ceil(full * share * SKILL_COVER)))
            lacking = [i for i in range(full) if skill not in skills[i]]
            rng.shuffle(lacking)
            for i in lacking[: max(0, want - (full - len(lacking)))]:
                skills[i].add(skill)
    names: set[str] = set()
    fleet = []
    for n in range(drivers):
        name = f"{rng.choice(demo.DRIVER_FIRST_NAMES)} {rng.choice(demo.SURNAMES)}"
        while name in names:
            name = f"{rng.choice(demo.DRIVER_FIRST_NAMES)} {rng.choice(demo.SURNAMES)}"
        names.add(name)
        if n < full:
            shift = (0.0, end)
        elif (n - full) % 2 == 0:  # early
            shift = (0.0, round(end * rng.uniform(0.55, 0.65)))
        else:  # late
            shift = (round(end * rng.uniform(0.35, 0.45)), end)
        fleet.append(
            DriverSpec(
                id=f"drv-{n + 1:03d}",
                name=name,
                home=city.random_point(rng),
                shift_start_s=shift[0],
                shift_end_s=shift[1],
                skills=tuple(sorted(skills[n])),
            )
        )
    return fleet


def job_seconds(
    city: City, request: RequestSpec, fleet: Sequence[DriverSpec], start: datetime
) -> float:
    """Estimated time a driver is taken up by a request: the drive there, the work on scene and,
    for towing, the drive to the workshop.

    The drive there is from the nearest of the drivers who would be free at the target
    utilisation (30 % of those on shift who may do the job), taken as a fixed sample of their
    homes: drivers spread over the city much as their homes do."""
    at = start + timedelta(seconds=request.at_s)
    able = [
        d
        for d in fleet
        if d.shift_start_s <= request.at_s < d.shift_end_s and d.can_do(request.service_type)
    ] or list(fleet)
    free = max(1, round((1 - TARGET_PEAK_UTILISATION) * len(able)))
    sample = random.Random(request.id).sample(able, min(free, len(able)))
    scene = (request.lat, request.lng)
    drive = min(city.estimate(d.home, scene, at)[1] for d in sample)
    seconds = drive + request.on_scene_s
    if request.destination is not None:
        seconds += city.estimate(scene, request.destination, at + timedelta(seconds=seconds))[1]
    return seconds


def peak_utilisation(
    city: City, fleet: Sequence[DriverSpec], demand: Sequence[RequestSpec], start: datetime
) -> float:
    """The share of on-shift driver time the demand takes up in its busiest hour (hour-long
    windows every 15 minutes; a job counts in the window it is called in)."""
    if not demand or not fleet:
        return 0.0
    run_end = max(max(d.shift_end_s for d in fleet), max(r.at_s for r in demand))
    window = min(UTILISATION_WINDOW_S, run_end)
    jobs = [(r.at_s, job_seconds(city, r, fleet, start)) for r in demand]
    best = 0.0
    at = 0.0
    while at + window <= run_end + 1e-9:
        busy = sum(s for t, s in jobs if at <= t < at + window)
        on_shift = sum(
            max(0.0, min(d.shift_end_s, at + window) - max(d.shift_start_s, at)) for d in fleet
        )
        if on_shift > 0:
            best = max(best, busy / on_shift)
        at += UTILISATION_STEP_S
    return best


def size_demand_for_utilisation(
    city: City,
    fleet: Sequence[DriverSpec],
    seed: int,
    hours: float,
    start: datetime,
    target: float = TARGET_PEAK_UTILISATION,
) -> int:
    """How many requests over the run keep this fleet `target` busy in the busiest hour.

    Utilisation grows in proportion to the request count, so a pilot demand is scaled to the
    target and the answer checked once more with a demand of that size."""
    count = max(1, round(50 * hours))
    for _ in range(2):
        demand = generate_demand(city, seed, count, hours, start)
        used = peak_utilisation(city, fleet, demand, start)
        count = max(1, round(count * target / used)) if used > 0 else count * 2
    return count
