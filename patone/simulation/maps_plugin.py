"""The maps provider of the simulation: the engine sees the city only through it.

It answers `route` and `distance_matrix` from the city's road graph and hour-of-day speed
profile, never its traffic noise: like a real maps provider it knows the roads and the usual
rush hours, not what will happen on this trip. Register an instance with the plugin manager
(`manager.register(SimulatedMaps(city))`); it is on for every tenant and answers before the
offline and Google maps plugins.

The hooks are `async def` on purpose: an answer is a table lookup (well under a millisecond for
50 drivers x 1 request), cheaper than the thread the manager would run a plain function in.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from patone.plugins.hookspecs import hookimpl
from patone.plugins.types import GeoPoint, PluginInfo, RouteEstimate
from patone.simulation.city import City, Point

NAME = "maps-simulated"
INFO = PluginInfo(
    name=NAME,
    title="Simulated maps",
    description="Distances and travel times of the simulator's city (no traffic noise).",
    default_enabled=True,
)


def as_point(value: Any) -> Point:
    """(lat, lng) of a `GeoPoint`, a mapping with lat and lng, or a (lat, lng) pair."""
    if isinstance(value, GeoPoint):
        return value.lat, value.lng
    if isinstance(value, Mapping):
        return float(value["lat"]), float(value["lng"])
    lat, lng = value
    return float(lat), float(lng)


class SimulatedMaps:
    """Maps answers for one simulated city (graph + speed profile, no noise)."""

    def __init__(self, city: City) -> None:
        self.city = city

    def estimate(self, origin: Any, destination: Any, depart_at: datetime | None) -> RouteEstimate:
        distance_m, duration_s = self.city.estimate(
            as_point(origin), as_point(destination), depart_at
        )
        return RouteEstimate(
            distance_m=round(distance_m), duration_s=round(duration_s), provider=NAME
        )

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return INFO

    @hookimpl(tryfirst=True)
    async def route(
        self, origin: Any, destination: Any, depart_at: datetime | None
    ) -> RouteEstimate:
        return self.estimate(origin, destination, depart_at)

    @hookimpl(tryfirst=True)
    async def distance_matrix(
        self, origins: list[Any], destinations: list[Any], depart_at: datetime | None
    ) -> list[list[RouteEstimate]]:
        targets = [as_point(d) for d in destinations]
        return [[self.estimate(o, d, depart_at) for d in targets] for o in origins]
