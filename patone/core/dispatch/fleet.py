"""Drivers as dispatch sees them: a position set by hand (one GPS ping); a driver who stops
working (off duty, on a break, archived) loses their live offer in the same transaction as the
change; an archived driver is taken off the live map as well as off the roster."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from patone.core.common.inputs import Input, Latitude, Longitude, parse
from patone.core.common.permissions import Actor, require
from patone.core.dispatch import offers, positions
from patone.core.domain import drivers
from patone.core.domain.drivers import UNKNOWN_ACCURACY_M, driver_row
from patone.core.runtime.clock import now
from patone.core.runtime.errors import UserError, ValidationFailed
from patone.core.tables.fleet import DriverRow, DriverStatus
from patone.tenants.isolation import TenantRef, tenant_transaction


class PositionInput(Input):
    lat: Latitude
    lng: Longitude
    accuracy_m: float = Field(UNKNOWN_ACCURACY_M, gt=0)


async def set_position(tenant: TenantRef, actor: Actor, driver_id: int, data: Any) -> DriverRow:
    """The driver's position now, recorded as a GPS ping (`dispatch.positions.record_pings`:
    live map, Redis GEO, history). The row returned shows it at once; the drivers table itself
    catches up within seconds, when the history is flushed."""
    if actor.driver_id != driver_id:
        require(actor, "drivers.manage")
    position = parse(PositionInput, data)
    async with tenant_transaction(tenant):
        row = await driver_row(driver_id)
    ping = {**position.model_dump(), "driver_id": driver_id, "recorded_at": now()}
    report = await positions.record_pings(tenant, actor, [ping])
    if report.refused:
        raise ValidationFailed([UserError(r.code, r.message, r.field) for r in report.refused])
    for latest in await positions.driver_positions(tenant, [driver_id]):
        row = row.replace(last_lat=latest.lat, last_lng=latest.lng, last_seen_at=latest.recorded_at)
    return row


# Statuses in which a driver cannot answer an offer.
STOPPED = (DriverStatus.off_duty, DriverStatus.on_break)


async def update_driver(tenant: TenantRef, actor: Actor, driver_id: int, data: Any) -> DriverRow:
    """Change a driver (`domain.drivers.update_driver`); one who stops working loses their
    live offer, and its request waits for the next driver."""
    async with tenant_transaction(tenant):
        after = await drivers.update_driver(tenant, actor, driver_id, data)
        if after.status in STOPPED:
            await offers.withdraw_driver_offers(driver_id, f"driver went {after.status}")
    return after


async def set_own_status(tenant: TenantRef, actor: Actor, status: Any) -> DriverRow:
    """A signed-in driver's own status (`domain.drivers.set_own_status`); going off duty or
    on a break withdraws their live offer."""
    async with tenant_transaction(tenant):
        after = await drivers.set_own_status(tenant, actor, status)
        if after.status in STOPPED:
            await offers.withdraw_driver_offers(after.id, f"driver went {after.status}")
    return after


async def archive_driver(tenant: TenantRef, actor: Actor, driver_id: int) -> DriverRow:
    """Archive the driver (`domain.drivers.archive_driver`), withdraw their live offer, and
    take them off the live map."""
    require(actor, "drivers.manage")
    async with tenant_transaction(tenant):
        archived = await drivers.archive_in_transaction(actor, driver_id)
        await offers.withdraw_driver_offers(driver_id, "driver archived")
    await drivers.after_archiving(tenant, archived)
    await positions.forget_driver(tenant, driver_id)
    return archived
