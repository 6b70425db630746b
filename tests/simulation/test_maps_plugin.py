"""The simulation's maps plugin answers the engine through the real plugin manager."""

from __future__ import annotations

import random
import statistics
import time
from datetime import datetime

from patone.plugins.builtin import maps_offline
from patone.plugins.manager import PluginManager
from patone.plugins.types import GeoPoint, RouteEstimate
from patone.simulation.city import City
from patone.simulation.maps_plugin import NAME, SimulatedMaps

MORNING_PEAK = datetime(2026, 3, 2, 8, 0)


def _points(city: City, n: int, seed: int) -> list[GeoPoint]:
    rng = random.Random(seed)
    return [GeoPoint(*city.random_point(rng)) for _ in range(n)]


def _expected(city: City, origin: GeoPoint, destination: GeoPoint) -> RouteEstimate:
    metres, seconds = city.estimate(
        (origin.lat, origin.lng), (destination.lat, destination.lng), MORNING_PEAK
    )
    return RouteEstimate(distance_m=round(metres), duration_s=round(seconds), provider=NAME)


async def test_the_engine_gets_the_citys_estimate_without_noise_through_the_manager(
    city: City,
) -> None:
    manager = PluginManager(load_entry_points=False)
    manager.register(maps_offline)
    manager.register(SimulatedMaps(city))  # answers first, whatever the order
    assert manager.infos()[NAME].default_enabled
    drivers, (scene,) = _points(city, 50, 1), _points(city, 1, 2)
    answer = await manager.call_first(
        "distance_matrix", origins=drivers, destinations=[scene], depart_at=MORNING_PEAK
    )
    assert answer is not None and answer.plugin == NAME
    assert answer.value == [[_expected(city, d, scene)] for d in drivers]
    route = await manager.call_first(
        "route",
        origin={"lat": drivers[0].lat, "lng": drivers[0].lng},
        destination=(scene.lat, scene.lng),
        depart_at=MORNING_PEAK,
    )
    assert route is not None and route.value == _expected(city, drivers[0], scene)
    true = city.true_duration(
        "trip-1", (drivers[0].lat, drivers[0].lng), (scene.lat, scene.lng), MORNING_PEAK
    )
    assert route.value.duration_s != round(true)  # the noise stays the simulator's
    manager.close()


async def test_the_plugin_wins_over_the_installed_maps_plugins(city: City) -> None:
    manager = PluginManager()  # the installed entry points: offline and Google maps
    manager.register(SimulatedMaps(city))
    a, b = _points(city, 2, 3)
    answer = await manager.call_first("route", origin=a, destination=b, depart_at=MORNING_PEAK)
    assert answer is not None and answer.value.provider == NAME
    manager.close()


async def test_a_matrix_of_fifty_drivers_for_one_request_is_a_table_lookup(city: City) -> None:
    maps = SimulatedMaps(city)
    drivers, scene = _points(city, 50, 4), _points(city, 1, 5)
    timings = []
    for _ in range(50):
        started = time.perf_counter()
        await maps.distance_matrix(drivers, scene, MORNING_PEAK)
        timings.append(time.perf_counter() - started)
    assert statistics.median(timings) < 0.005  # about 0.5 ms; far from a provider's 100 ms
