"""Travel times: how long each driver would take to a scene, from the company's maps plugin.

The engine ranks drivers by these, ETAs and drivers' plans are built from them. One call asks
for a whole matrix (each origin to each destination), so a provider that prices per request
answers a sweep's candidates at once.
"""

from __future__ import annotations

import contextlib
from datetime import datetime

from patone.plugins import config as plugins
from patone.plugins.builtin import maps_offline
from patone.plugins.types import GeoPoint, RouteEstimate
from patone.tenants.isolation import TenantRef


async def travel_matrix(
    tenant: TenantRef, origins: list[GeoPoint], destinations: list[GeoPoint], depart_at: datetime
) -> list[list[RouteEstimate | None]]:
    """Travel from each origin to each destination, from the company's maps plugin (the
    offline model when no plugin answers); None where the provider knows of no road."""
    if not origins or not destinations:
        return [[] for _ in origins]
    answer = None
    with contextlib.suppress(RuntimeError):  # no plugin runtime (scripts): offline model
        answer = await plugins.call_first(
            tenant,
            "distance_matrix",
            origins=origins,
            destinations=destinations,
            depart_at=depart_at,
        )
    rows = answer.value if answer is not None else None
    if isinstance(rows, list) and len(rows) == len(origins):
        return [list(row) if row else [None] * len(destinations) for row in rows]
    return [[maps_offline.estimate(o, d, depart_at) for d in destinations] for o in origins]


async def travel_estimates(
    tenant: TenantRef, origins: list[GeoPoint], destination: GeoPoint, depart_at: datetime
) -> list[RouteEstimate | None]:
    """Travel from each origin to `destination` (see `travel_matrix`)."""
    return [row[0] for row in await travel_matrix(tenant, origins, [destination], depart_at)]
