"""Travel times: how long each driver would take to a scene, from the company's maps plugins.

The engine ranks drivers by these; ETAs and drivers' plans are built from them. One call asks
for a whole matrix (each origin to each destination), so a provider that prices per request
answers a sweep's candidates at once. Every answer comes through the plugin manager: where the
company's provider gives none the engine can use (down, or a matrix of the wrong shape), the
always-on offline provider (`maps-offline`, a built-in plugin) answers instead.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from patone.plugins import config as plugins
from patone.plugins.types import GeoPoint, PluginResult, RouteEstimate
from patone.tenants.isolation import TenantRef

HOOK = "distance_matrix"


async def travel_matrix(
    tenant: TenantRef, origins: list[GeoPoint], destinations: list[GeoPoint], depart_at: datetime
) -> list[list[RouteEstimate | None]]:
    """Travel from each origin to each destination, from the company's maps plugin (the
    always-on offline one when no other answers usably); None where the provider knows of no
    road, everywhere when no plugin answers at all."""
    if not origins or not destinations:
        return [[] for _ in origins]
    asked: dict[str, Any] = {
        "origins": origins,
        "destinations": destinations,
        "depart_at": depart_at,
    }
    answer = None
    with contextlib.suppress(RuntimeError):  # no plugin runtime (a script, a test)
        answer = await plugins.call_first(tenant, HOOK, **asked)
    rows = _matrix(answer, len(origins), len(destinations))
    if rows is None:  # the always-on offline provider answers
        answer = await plugins.call_always_on(tenant, HOOK, **asked)
        rows = _matrix(answer, len(origins), len(destinations))
    return rows if rows is not None else [[None] * len(destinations) for _ in origins]


def _matrix(
    answer: PluginResult | None, origins: int, destinations: int
) -> list[list[RouteEstimate | None]] | None:
    """The answer's rows (a row the provider left empty has no road), if it has one per origin."""
    rows = answer.value if answer is not None else None
    if not isinstance(rows, list) or len(rows) != origins:
        return None
    return [list(row) if row else [None] * destinations for row in rows]


async def travel_estimates(
    tenant: TenantRef, origins: list[GeoPoint], destination: GeoPoint, depart_at: datetime
) -> list[RouteEstimate | None]:
    """Travel from each origin to `destination` (see `travel_matrix`)."""
    return [row[0] for row in await travel_matrix(tenant, origins, [destination], depart_at)]
