"""Hand-built dispatch situations: drivers at known places, requests at known places.

Berlin's Alexanderplatz is the scene; drivers stand due east of it at the given distances, so
the offline maps model ranks them by distance in every hour.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from patone.core.common.permissions import SYSTEM
from patone.core.dispatch import fleet
from patone.core.domain import customers, drivers, service_requests
from patone.core.runtime.clock import use_clock
from patone.core.runtime.db import engine
from patone.core.tables.fleet import DriverRow
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo
from tests.conftest import actor_for

DISPATCHER = actor_for("dispatcher")
SCENE = (52.52, 13.405)
# Tuesday 10:00 UTC: inside business hours, outside rush hours.
MORNING = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def east_of_scene(km: float) -> tuple[float, float]:
    lat, lng = SCENE
    return lat, lng + km / (111.32 * math.cos(math.radians(lat)))


async def driver_at(
    tenant: TenantInfo,
    km: float,
    *,
    name: str = "",
    skills: tuple[str, ...] = ("tow",),
    rating: int | None = None,
    status: str = "available",
) -> DriverRow:
    """A driver `km` east of the scene, on shift."""
    created = await drivers.create_driver(
        tenant, SYSTEM, {"name": name or f"Driver {km:g} km", "skills": list(skills)}
    )
    lat, lng = east_of_scene(km)
    await fleet.set_position(tenant, SYSTEM, created.id, {"lat": lat, "lng": lng})
    await drivers.update_driver(tenant, SYSTEM, created.id, {"status": status})
    if rating is not None:
        async with tenant_transaction(tenant):
            await engine.execute("UPDATE drivers SET rating = $2 WHERE id = $1", created.id, rating)
    return created


async def request_at_scene(
    tenant: TenantInfo, *, priority: str = "normal", service_type: str = "jump_start"
) -> dict[str, Any]:
    customer = await customers.create_customer(
        tenant, DISPATCHER, {"name": "Dana Stranded", "phone": "+1 415 555 2671"}
    )
    data: dict[str, Any] = {
        "customer_id": customer.id,
        "service_type": service_type,
        "priority": priority,
        "pickup": {"lat": SCENE[0], "lng": SCENE[1], "address": "Alexanderplatz 1"},
    }
    if service_type == "towing":
        data["destination"] = {"lat": 52.50, "lng": 13.45, "address": "Garage"}
    with use_clock(lambda: MORNING):
        return await service_requests.create_request(tenant, DISPATCHER, data)


async def calls_at_scene_before(tenant: TenantInfo, calls: int) -> None:
    """`calls` past calls at the scene, at this hour of the day over the last days (what
    staging learns where calls come from)."""
    for n in range(calls):
        request = await request_at_scene(tenant)
        async with tenant_transaction(tenant):
            await engine.execute(
                "UPDATE service_requests SET created_at = $2, status = 'cancelled', "
                "cancel_reason = 'duplicate' WHERE id = $1",
                request.id,
                MORNING - timedelta(days=1 + n % 20),
            )


def driver_actor(driver: DriverRow | dict[str, Any]) -> Any:
    driver_id = int(driver["id"] if isinstance(driver, dict) else driver.id)
    return actor_for("driver", user_id=1000 + driver_id, driver_id=driver_id)


class Clock:
    """Business time the test moves by hand."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)
