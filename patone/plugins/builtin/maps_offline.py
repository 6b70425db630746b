"""Offline maps: the default when no maps provider is configured, and always on.

Distance is the great-circle distance times a road factor; speed depends on the hour of day
(rush hours slow, nights fast). Good enough to rank drivers and quote towing distance with no
network; the Google plugin replaces it where configured. Dispatch relies on it for travel
times whenever a company's provider gives no usable answer, so no company can turn it off.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from patone.plugins.hookspecs import hookimpl
from patone.plugins.types import GeoPoint, PluginInfo, RouteEstimate

NAME = "maps-offline"
EARTH_RADIUS_M = 6_371_008.8
ROAD_FACTOR = 1.3  # roads are longer than the straight line
# km/h by local hour of day
SPEED_BY_HOUR = {h: 45.0 for h in range(24)} | {
    **{h: 28.0 for h in (7, 8, 16, 17, 18)},
    **{h: 60.0 for h in (22, 23, 0, 1, 2, 3, 4, 5)},
}


def _point(value: Any) -> GeoPoint:
    if isinstance(value, GeoPoint):
        return value
    return GeoPoint(lat=float(value["lat"]), lng=float(value["lng"]))


def estimate(origin: Any, destination: Any, depart_at: datetime | None) -> RouteEstimate:
    a, b = _point(origin), _point(destination)
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lng - a.lng)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    distance = 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h)) * ROAD_FACTOR
    speed_kmh = SPEED_BY_HOUR[depart_at.hour if depart_at else 12]
    return RouteEstimate(
        distance_m=round(distance), duration_s=round(distance / (speed_kmh / 3.6)), provider=NAME
    )


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        name=NAME,
        title="Offline maps",
        description="Distances and travel times without a maps provider.",
        default_enabled=True,
        always_on=True,
    )


@hookimpl(trylast=True)
def route(origin: Any, destination: Any, depart_at: datetime | None) -> RouteEstimate:
    return estimate(origin, destination, depart_at)


@hookimpl(trylast=True)
def distance_matrix(
    origins: list[Any], destinations: list[Any], depart_at: datetime | None
) -> list[list[RouteEstimate]]:
    return [[estimate(o, d, depart_at) for d in destinations] for o in origins]
