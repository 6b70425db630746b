"""Requests and drivers of the simulation: when, where, what, and who can do it."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from patone.core.domain import service_types
from patone.core.runtime.errors import UserError
from patone.demo import company as demo
from patone.simulation.city import City
from patone.simulation.demand import (
    FULL_SHIFT_SHARE,
    REQUIRED_SKILLS,
    SKILL_COVER,
    TARGET_PEAK_UTILISATION,
    emergencies_for,
    generate_demand,
    generate_fleet,
    peak_utilisation,
    size_demand_for_utilisation,
)
from patone.tenants.registry import TenantInfo
from tests.conftest import actor_for

SIX_AM = datetime(2026, 3, 2, 6, 0)  # local time in the city


@pytest.mark.parametrize(("requests", "emergencies"), [(2000, 100), (30, 2), (10, 1), (9, 0)])
def test_exactly_five_percent_of_requests_are_emergencies(
    city: City, requests: int, emergencies: int
) -> None:
    assert emergencies_for(requests) == emergencies
    demand = generate_demand(city, 1, requests, 12, SIX_AM)
    assert len(demand) == requests
    assert sum(r.priority == "emergency" for r in demand) == emergencies


def test_requests_are_sorted_in_the_run_inside_the_city_and_well_formed(city: City) -> None:
    demand = generate_demand(city, 1, 3000, 12, SIX_AM)
    assert [r.at_s for r in demand] == sorted(r.at_s for r in demand)
    assert demand[0].at_s >= 0 and demand[-1].at_s < 12 * 3600
    assert len({r.id for r in demand}) == len(demand)
    (south, west), (north, east) = city.bounds
    assert all(south <= r.lat <= north and west <= r.lng <= east for r in demand)
    assert {r.priority for r in demand} == {"low", "normal", "high", "emergency"}
    mix = Counter(r.service_type for r in demand)
    assert set(mix) == set(demo.SERVICE_MIX)
    assert mix.most_common(1)[0][0] == "towing"
    for r in demand:
        assert (r.destination is not None) == (r.service_type == "towing")
    for code, minutes in demo.WORK_MINUTES.items():
        on_scene = [r.on_scene_s for r in demand if r.service_type == code]
        assert statistics.median(on_scene) == pytest.approx(minutes * 60, rel=0.15)


def test_calls_follow_the_hourly_curve_with_morning_and_evening_peaks(city: City) -> None:
    midnight = datetime(2026, 3, 1, 23, 0, tzinfo=UTC)  # midnight in Berlin
    demand = generate_demand(city, 2, 24_000, 24, midnight)
    by_hour = Counter(int(r.at_s // 3600) for r in demand)
    total = sum(demo.HOUR_WEIGHTS)
    for hour, weight in enumerate(demo.HOUR_WEIGHTS):
        expected = 24_000 * weight / total
        assert abs(by_hour[hour] - expected) < 4 * math.sqrt(expected)
    busiest = {hour for hour, _ in by_hour.most_common(4)}
    assert busiest <= {7, 8, 15, 16, 17, 18} and busiest & {7, 8} and busiest & {16, 17}
    assert by_hour[3] < by_hour[8] / 5


def test_some_places_call_far_more_than_others() -> None:
    city = City.build(3)  # the default size: hotspots are a few km across
    demand = generate_demand(city, 3, 4000, 12, SIX_AM)
    cells = Counter(
        (int(x // 1000), int(y // 1000)) for x, y in (city.to_xy(r.lat, r.lng) for r in demand)
    )
    background = len(demand) / 400  # per square km if calls came from anywhere alike
    assert max(cells.values()) > 4 * background
    assert sorted(cells.values())[len(cells) // 2] < background


def test_the_same_seed_gives_the_same_demand_and_fleet(city: City) -> None:
    assert generate_demand(city, 5, 500, 12, SIX_AM) == generate_demand(city, 5, 500, 12, SIX_AM)
    assert generate_demand(city, 5, 500, 12, SIX_AM) != generate_demand(city, 6, 500, 12, SIX_AM)
    assert generate_fleet(city, 5, 30, 12) == generate_fleet(city, 5, 30, 12)
    assert generate_fleet(city, 5, 30, 12) != generate_fleet(city, 6, 30, 12)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: generate_demand(c, 1, 0, 12, SIX_AM), "requests"),
        (lambda c: generate_demand(c, 1, 10, 0, SIX_AM), "hours"),
        (lambda c: generate_fleet(c, 1, 0, 12), "drivers"),
    ],
)
def test_impossible_sizes_are_refused_naming_the_argument(
    city: City, call: Callable[[City], object], field: str
) -> None:
    with pytest.raises(UserError) as refused:
        call(city)
    assert refused.value.field == field


def test_most_drivers_work_the_whole_run_and_shifts_cover_it(city: City) -> None:
    fleet = generate_fleet(city, 1, 50, 12)
    end = 12 * 3600
    assert len(fleet) == 50 and len({d.id for d in fleet}) == len({d.name for d in fleet}) == 50
    whole = [d for d in fleet if d.shift_start_s == 0 and d.shift_end_s == end]
    assert len(whole) >= FULL_SHIFT_SHARE * 50
    partial = [d for d in fleet if d not in whole]
    assert partial and all(d.shift_end_s - d.shift_start_s >= 0.5 * end for d in partial)
    assert any(d.shift_start_s > 0 for d in partial) and any(d.shift_end_s < end for d in partial)
    for minute in range(0, end, 60):
        on_shift = [d for d in fleet if d.shift_start_s <= minute < d.shift_end_s]
        assert len(on_shift) >= len(whole)


@pytest.mark.parametrize("drivers", [1, 5, 50])
def test_every_service_type_has_enough_drivers_who_may_do_it(city: City, drivers: int) -> None:
    fleet = generate_fleet(city, 4, drivers, 12)
    whole = [d for d in fleet if d.shift_end_s - d.shift_start_s == 12 * 3600]
    total = sum(demo.SERVICE_MIX.values())
    for code, share in demo.SERVICE_MIX.items():
        able = [d for d in whole if d.can_do(code)]
        wanted = min(len(whole), math.ceil(len(whole) * share / total * SKILL_COVER))
        assert len(able) >= max(1, wanted), code


async def test_the_skills_the_simulation_expects_are_a_new_companys_defaults(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    await service_types.update_service_type(
        bolt, actor_for("admin"), "towing", {"required_skills": ["tow", "crane"]}
    )
    defaults = {
        row.code: tuple(row.required_skills) for row in await service_types.list_service_types(acme)
    }
    assert defaults == REQUIRED_SKILLS  # bolt's change stays bolt's
    changed = await service_types.list_service_types(bolt)
    assert next(r for r in changed if r.code == "towing").required_skills == ["tow", "crane"]


def test_peak_utilisation_grows_with_demand_and_sizing_meets_the_target(city: City) -> None:
    fleet = generate_fleet(city, 1, 50, 12)
    light = peak_utilisation(city, fleet, generate_demand(city, 1, 600, 12, SIX_AM), SIX_AM)
    heavy = peak_utilisation(city, fleet, generate_demand(city, 1, 1200, 12, SIX_AM), SIX_AM)
    assert 0 < light < heavy
    assert heavy / light == pytest.approx(2, rel=0.2)
    count = size_demand_for_utilisation(city, fleet, 1, 12, SIX_AM)
    sized = peak_utilisation(city, fleet, generate_demand(city, 1, count, 12, SIX_AM), SIX_AM)
    assert sized == pytest.approx(TARGET_PEAK_UTILISATION, abs=0.1)
    assert peak_utilisation(city, fleet, [], SIX_AM) == 0.0
