"""Services a company sells, their prices, and quoting a job (integer minor units)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Protocol

from pydantic import Field

from patone.core.common.activity import record
from patone.core.common.inputs import Input, Money, parse
from patone.core.common.permissions import Actor, require
from patone.core.common.rows import fetch_records, update_row
from patone.core.domain.company import is_after_hours
from patone.core.runtime.clock import now
from patone.core.runtime.db import engine
from patone.core.runtime.errors import NotFound
from patone.core.tables.requests import ServiceTypeRow
from patone.tenants.isolation import TenantRef, tenant_transaction

KM_PER_MILE = 1.609344
EARTH_RADIUS_KM = 6371.0088


class ServiceTypeChanges(Input):
    name: str | None = Field(None, min_length=1, max_length=100)
    base_price: Money | None = None
    per_distance_price: Money | None = None
    after_hours_surcharge: Money | None = None
    required_skills: list[str] | None = Field(None, max_length=20)
    active: bool | None = None


async def service_type_by_code(code: str) -> ServiceTypeRow:
    """Inside a tenant transaction: the service type with this code."""
    rows = await engine.fetch(
        f"SELECT {ServiceTypeRow.columns()} FROM service_types WHERE code = $1", code
    )
    if not rows:
        raise NotFound("not_found", f"service type {code!r} does not exist", "service_type")
    return ServiceTypeRow.of(rows[0])


async def list_service_types(
    tenant: TenantRef, *, include_inactive: bool = False
) -> list[ServiceTypeRow]:
    """The price list (everyone who can see requests can see it)."""
    async with tenant_transaction(tenant):
        return await fetch_records(
            ServiceTypeRow,
            f"SELECT {ServiceTypeRow.columns()} FROM service_types WHERE active OR $1 ORDER BY id",
            include_inactive,
        )


async def update_service_type(
    tenant: TenantRef, actor: Actor, code: str, data: Any
) -> ServiceTypeRow:
    require(actor, "service_types.manage")
    changes = parse(ServiceTypeChanges, data).model_dump(exclude_unset=True)
    async with tenant_transaction(tenant):
        before = await service_type_by_code(code)
        if changes:
            await update_row("service_types", before.id, {**changes, "updated_at": now()})
        after = await service_type_by_code(code)
        await record(
            actor,
            "service_type",
            after.id,
            "service_type.updated",
            before.as_dict(),
            after.as_dict(),
        )
    return after


def distance_km(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance; the maps plugin replaces it with road distance later."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


class Prices(Protocol):
    """What a quote reads of a service type (a `ServiceTypeRow`, or the demo's own)."""

    @property
    def base_price(self) -> int: ...
    @property
    def per_distance_price(self) -> int: ...
    @property
    def after_hours_surcharge(self) -> int: ...


def quote(
    service_type: Prices,
    settings: dict[str, Any],
    at: datetime,
    distance_km: float | None = None,
) -> int:
    """The price in minor units: base + distance (in the tenant's units) + after-hours."""
    price = int(service_type.base_price)
    if distance_km and service_type.per_distance_price:
        units = distance_km / KM_PER_MILE if settings.get("units") == "mi" else distance_km
        price += math.ceil(units * service_type.per_distance_price)
    if is_after_hours(at, settings):
        price += int(service_type.after_hours_surcharge)
    return price
