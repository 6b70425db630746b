"""The simulated city: its roads, its rush hours and its traffic noise."""

from __future__ import annotations

import itertools
import math
import random
import statistics
from datetime import UTC, datetime

import pytest

from patone.demo import company as demo
from patone.simulation import city as city_module
from patone.simulation.city import (
    ACCESS_ROAD_FACTOR,
    ARTERIAL_KMH,
    LOCAL_KMH,
    NIGHT_FACTOR,
    PEAK_FACTOR,
    City,
    speed_factor,
)
from tests.simulation.conftest import SEED

NOON = datetime(2026, 3, 2, 12, 0)  # a Monday, local time
MORNING_PEAK = datetime(2026, 3, 2, 8, 0)
EVENING_PEAK = datetime(2026, 3, 2, 17, 0)
NIGHT = datetime(2026, 3, 2, 3, 0)


def _pairs(city: City, n: int, seed: int = 1) -> list[tuple[tuple[float, float], ...]]:
    rng = random.Random(seed)
    return [(city.random_point(rng), city.random_point(rng)) for _ in range(n)]


def test_every_node_reaches_every_other(city: City) -> None:
    assert city.nodes == city.side**2
    assert all(math.isfinite(t) for row in city.duration for t in row)


def test_the_grid_has_missing_blocks_and_faster_arterials(city: City) -> None:
    possible_grid_roads = 2 * city.side * (city.side - 1)
    grid_roads = [r for r in city.roads if r.b - r.a in (1, city.side)]
    assert len(grid_roads) < possible_grid_roads  # not a perfect grid
    speeds = {r.speed_kmh for r in city.roads}
    assert speeds == {ARTERIAL_KMH, LOCAL_KMH}
    diagonals = [r for r in city.roads if r.b - r.a in (city.side + 1, city.side - 1)]
    assert diagonals and all(r.arterial for r in diagonals)


def test_the_city_lies_in_the_demo_companys_area(city: City) -> None:
    default = City.build(SEED)
    for c in (city, default):
        (south, west), (north, east) = c.bounds
        assert demo.LAT_MIN < south < north < demo.LAT_MAX
        assert demo.LNG_MIN < west < east < demo.LNG_MAX
    (south, west), (north, east) = default.bounds
    assert (north - south) * city_module.M_PER_DEG_LAT == pytest.approx(20_000, rel=0.01)


def test_the_same_seed_builds_the_same_city_and_another_seed_another(city: City) -> None:
    again = city_module._build.__wrapped__(SEED, 6.0, 600.0)
    assert again is not city
    assert (again.xs, again.roads) == (city.xs, city.roads)
    other = City.build(SEED + 1, size_km=6, spacing_m=600)
    assert other.xs != city.xs


def test_nearest_node_is_the_closest_node(city: City) -> None:
    rng = random.Random(3)
    for _ in range(300):
        lat, lng = city.random_point(rng)
        x, y = city.to_xy(lat, lng)
        closest = min(
            range(city.nodes), key=lambda n: (city.xs[n] - x) ** 2 + (city.ys[n] - y) ** 2
        )
        assert city.nearest_node(lat, lng) == closest


def test_estimates_are_symmetric_and_drive_at_plausible_speeds(city: City) -> None:
    for origin, destination in _pairs(city, 200):
        there = city.estimate(origin, destination, NOON)
        back = city.estimate(destination, origin, NOON)
        assert there == (pytest.approx(back[0]), pytest.approx(back[1]))
        metres, seconds = there
        straight = math.dist(city.to_xy(*origin), city.to_xy(*destination))
        assert metres >= straight * 0.99
        if metres > 500:
            assert LOCAL_KMH * 0.8 <= metres / seconds * 3.6 <= ARTERIAL_KMH


def test_peak_hours_are_slower_by_the_fixed_factor_and_nights_faster(city: City) -> None:
    for origin, destination in _pairs(city, 50):
        metres, free = city.estimate(origin, destination, NOON)
        for peak in (MORNING_PEAK, EVENING_PEAK):
            peak_metres, slow = city.estimate(origin, destination, peak)
            assert peak_metres == metres
            assert slow == pytest.approx(free / PEAK_FACTOR)
        assert city.estimate(origin, destination, NIGHT)[1] == pytest.approx(free / NIGHT_FACTOR)


def test_the_speed_profile_ramps_smoothly_between_peak_and_off_peak() -> None:
    minutes = [speed_factor(m / 60) for m in range(24 * 60 + 1)]
    assert max(abs(a - b) for a, b in itertools.pairwise(minutes)) < 0.01
    assert min(minutes) == PEAK_FACTOR and max(minutes) == NIGHT_FACTOR
    assert speed_factor(12) == 1.0 and speed_factor(8) == speed_factor(17.5) == PEAK_FACTOR


def test_departure_times_are_read_in_the_citys_local_time(city: City) -> None:
    origin, destination = _pairs(city, 1)[0]
    seven_utc = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)  # 08:00 in Berlin, in the peak
    assert city.estimate(origin, destination, seven_utc) == city.estimate(
        origin, destination, MORNING_PEAK
    )
    assert city.estimate(origin, destination, None) == city.estimate(origin, destination, NOON)


def test_a_point_off_the_graph_adds_a_straight_leg_to_its_node(city: City) -> None:
    start, end = city.node_point(0), city.node_point(city.nodes - 1)
    x, y = city.to_xy(*start)
    off = city.to_latlng(x + 60.0, y + 80.0)  # 100 m away, still nearest to node 0
    assert city.nearest_node(*off) == 0
    metres, seconds = city.estimate(start, end, NOON)
    off_metres, off_seconds = city.estimate(off, end, NOON)
    leg = 100.0 * ACCESS_ROAD_FACTOR
    assert off_metres == pytest.approx(metres + leg)
    assert off_seconds == pytest.approx(seconds + leg / (LOCAL_KMH / 3.6))


def test_true_durations_scatter_around_the_estimate_with_a_quarter_cv(city: City) -> None:
    origin, destination = _pairs(city, 1)[0]
    estimate = city.estimate(origin, destination, NOON)[1]
    ratios = [
        city.true_duration(f"trip-{n}", origin, destination, NOON) / estimate for n in range(20_000)
    ]
    mean = statistics.fmean(ratios)
    assert abs(mean - 1) < 0.01
    assert abs(statistics.stdev(ratios) / mean - 0.25) < 0.01
    assert min(ratios) > 0


def test_a_trip_gets_the_same_noise_in_every_city_built_with_the_seed(city: City) -> None:
    rebuilt = city_module._build.__wrapped__(SEED, 6.0, 600.0)
    other_seed = City.build(SEED + 1, size_km=6, spacing_m=600)
    origin, destination = _pairs(city, 1)[0]
    ids = [f"req-{n:05d}:to-scene" for n in range(50)]
    first = [city.true_duration(i, origin, destination, MORNING_PEAK) for i in ids]
    assert [rebuilt.true_duration(i, origin, destination, MORNING_PEAK) for i in ids] == first
    assert len(set(first)) == len(first)
    assert [other_seed.noise_factor(i) for i in ids] != [city.noise_factor(i) for i in ids]


def test_position_at_walks_the_path_from_origin_to_destination(city: City) -> None:
    origin, destination = _pairs(city, 1, seed=5)[0]
    path = [city.to_xy(*p) for p in city.path(origin, destination)]
    assert len(path) > 3
    total = 1500.0
    samples = [
        city.to_xy(*city.position_at(origin, destination, NOON, t, total))
        for t in range(0, 1501, 15)
    ]
    assert math.dist(samples[0], path[0]) < 0.01 and math.dist(samples[-1], path[-1]) < 0.01
    for x, y in samples:  # every position lies on the path
        assert min(_to_segment((x, y), a, b) for a, b in itertools.pairwise(path)) < 0.5
    walked = sum(math.dist(a, b) for a, b in itertools.pairwise(samples))
    length = sum(math.dist(a, b) for a, b in itertools.pairwise(path))
    assert walked == pytest.approx(length, rel=0.02)  # forwards only, no jumps
    assert city.position_at(origin, destination, NOON, -5, total) == city.position_at(
        origin, destination, NOON, 0, total
    )
    assert city.position_at(origin, destination, NOON, 2000, total) == destination


def _to_segment(p: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    (px, py), (ax, ay), (bx, by) = p, a, b
    dx, dy = bx - ax, by - ay
    span = dx * dx + dy * dy
    t = 0.0 if span == 0 else max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / span))
    return math.hypot(px - (ax + t * dx), py - (ay + t * dy))


def test_random_points_stay_in_the_city_near_or_not(city: City) -> None:
    rng = random.Random(9)
    (south, west), (north, east) = city.bounds
    centre = city.node_point(city.nodes // 2)
    anywhere = [city.random_point(rng) for _ in range(500)]
    near = [city.random_point(rng, near=centre, spread_m=300) for _ in range(500)]
    for lat, lng in anywhere + near:
        assert south <= lat <= north and west <= lng <= east
    cx, cy = city.to_xy(*centre)
    assert statistics.median(math.dist((cx, cy), city.to_xy(*p)) for p in near) < 600
