"""The plan catalogue (`platform.plans`) as operators see it: each plan's name and the limits
that tell plans apart. The platform API and `patone tenants plans` read it here; the rate
limiter reads a plan's limits on its own (`core/identity/ratelimits.py`), below the platform.
"""

from __future__ import annotations

from dataclasses import dataclass

from patone.core.runtime.db import engine


@dataclass(frozen=True)
class CatalogPlan:
    """A plan and its limits (None: unlimited)."""

    name: str
    title: str
    api_requests_per_minute: int
    max_drivers: int | None
    max_users: int | None
    max_plugins: int | None


async def list_plans() -> list[CatalogPlan]:
    """Every plan, smallest first (by API budget, then name)."""
    rows = await engine.fetch(
        "SELECT name, title, api_requests_per_minute, max_drivers, max_users, max_plugins "
        "FROM platform.plans ORDER BY api_requests_per_minute, name"
    )
    return [CatalogPlan(**dict(row)) for row in rows]
