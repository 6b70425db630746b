"""Drivers: profile, status, skills, shifts and last known position."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, model_validator

from patone.core.activity import audited_update, emit, record
from patone.core.clock import now
from patone.core.db import engine
from patone.core.dispatch import positions
from patone.core.errors import UserError, ValidationFailed
from patone.core.inputs import Input, Latitude, Longitude, Name, Phone, parse
from patone.core.permissions import Actor, require
from patone.core.rows import insert_row, row_by_id
from patone.core.tables import DriverStatus
from patone.core.users import actors_changed
from patone.tenants.isolation import TenantRef, tenant_transaction

Row = dict[str, Any]
Skill = str
UNKNOWN_ACCURACY_M = 100.0  # what a position sent without its accuracy is taken to have


class DriverInput(Input):
    name: Name
    phone: Phone | None = None
    skills: list[Skill] = Field(default_factory=list, max_length=20)
    truck: str = Field("", max_length=100)
    user_id: int | None = None


class DriverChanges(Input):
    name: Name | None = None
    phone: Phone | None = None
    skills: list[Skill] | None = Field(None, max_length=20)
    truck: str | None = Field(None, max_length=100)
    status: DriverStatus | None = None


class PositionInput(Input):
    lat: Latitude
    lng: Longitude
    accuracy_m: float = Field(UNKNOWN_ACCURACY_M, gt=0)


class ShiftInput(Input):
    starts_at: datetime
    ends_at: datetime

    @model_validator(mode="after")
    def _order(self) -> ShiftInput:
        if self.ends_at <= self.starts_at:
            raise ValueError("a shift must end after it starts")
        return self


DRIVER_COLUMNS = (
    'id, "user", name, phone, status, skills, truck, last_lat, last_lng, last_seen_at, '
    "rating, archived_at, created_at, updated_at"
)


async def _driver(driver_id: int) -> Row:
    return await row_by_id("drivers", DRIVER_COLUMNS, driver_id, what="driver", field="driver_id")


async def get_driver(tenant: TenantRef, actor: Actor, driver_id: int) -> Row:
    require(actor, "drivers.view")
    async with tenant_transaction(tenant):
        return await _driver(driver_id)


async def list_drivers(
    tenant: TenantRef, actor: Actor, *, status: DriverStatus | None = None
) -> list[Row]:
    require(actor, "drivers.view")
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            f"SELECT {DRIVER_COLUMNS} FROM drivers WHERE archived_at IS NULL "
            "AND ($1::varchar IS NULL OR status = $1) ORDER BY name, id",
            status,
        )
    return [dict(r) for r in rows]


async def _check_user_free(user_id: int) -> None:
    rows = await engine.fetch(
        'SELECT u.id, (SELECT d.id FROM drivers d WHERE d."user" = u.id AND d.archived_at IS NULL '
        "LIMIT 1) AS driver FROM users u WHERE u.id = $1",
        user_id,
    )
    if not rows:
        raise UserError("not_found", f"user {user_id} does not exist", "user_id")
    if rows[0]["driver"] is not None:
        raise UserError(
            "taken", f"user {user_id} already signs in as driver {rows[0]['driver']}", "user_id"
        )


async def create_driver(tenant: TenantRef, actor: Actor, data: Any) -> Row:
    require(actor, "drivers.manage")
    driver = parse(DriverInput, data)
    async with tenant_transaction(tenant):
        if driver.user_id is not None:
            await _check_user_free(driver.user_id)
        at = now()
        driver_id = await insert_row(
            "drivers",
            {
                "name": driver.name,
                "phone": driver.phone,
                "skills": sorted(set(driver.skills)),
                "truck": driver.truck,
                "user": driver.user_id,
                "status": DriverStatus.off_duty.value,
                "created_at": at,
                "updated_at": at,
            },
        )
        created = await _driver(driver_id)
        await record(actor, "driver", created["id"], "driver.created", None, created)
    if driver.user_id is not None:  # that user now acts as this driver
        await actors_changed(tenant)
    return created


async def update_driver(tenant: TenantRef, actor: Actor, driver_id: int, data: Any) -> Row:
    require(actor, "drivers.manage")
    changes = parse(DriverChanges, data).model_dump(exclude_unset=True)
    async with tenant_transaction(tenant):
        before = await _driver(driver_id)
        after = await audited_update(
            actor,
            "driver",
            "drivers",
            driver_id,
            {**changes, "updated_at": now()},
            "driver.updated",
            _driver,
        )
        if before["status"] != after["status"]:
            await emit(
                "driver.status_changed",
                "driver",
                driver_id,
                {"id": driver_id, "from": before["status"], "to": after["status"]},
            )
            if after["status"] in (DriverStatus.off_duty, DriverStatus.on_break):
                await _withdraw_offer(driver_id, f"driver went {after['status']}")
    return after


async def _withdraw_offer(driver_id: int, reason: str) -> None:
    """A driver who stops working cannot answer their live offer: it is withdrawn (in the
    caller's transaction) and its request waits for the next driver."""
    rows = await engine.fetch(
        "UPDATE offers SET status = 'withdrawn', responded_at = $2, reason = $3 "
        "WHERE driver_id = $1 AND status = 'open' RETURNING id, request_id",
        driver_id,
        now(),
        reason,
    )
    for row in rows:
        await emit(
            "offer.withdrawn",
            "offer",
            row["id"],
            {"id": row["id"], "request_id": row["request_id"], "driver_id": driver_id},
        )


async def set_position(tenant: TenantRef, actor: Actor, driver_id: int, data: Any) -> Row:
    """The driver's position now, recorded as a GPS ping (`dispatch.positions.record_pings`:
    live map, Redis GEO, history). The row returned shows it at once; the drivers table itself
    catches up within seconds, when the history is flushed."""
    if actor.driver_id != driver_id:
        require(actor, "drivers.manage")
    position = parse(PositionInput, data)
    async with tenant_transaction(tenant):
        row = await _driver(driver_id)
    ping = {**position.model_dump(), "driver_id": driver_id, "recorded_at": now()}
    report = await positions.record_pings(tenant, actor, [ping])
    if report.refused:
        raise ValidationFailed([UserError(r.code, r.message, r.field) for r in report.refused])
    for latest in await positions.driver_positions(tenant, [driver_id]):
        row.update(last_lat=latest.lat, last_lng=latest.lng, last_seen_at=latest.recorded_at)
    return row


async def archive_driver(tenant: TenantRef, actor: Actor, driver_id: int) -> Row:
    require(actor, "drivers.manage")
    async with tenant_transaction(tenant):
        archived = await audited_update(
            actor,
            "driver",
            "drivers",
            driver_id,
            {"archived_at": now(), "status": DriverStatus.off_duty.value},
            "driver.archived",
            _driver,
        )
        await _withdraw_offer(driver_id, "driver archived")
    await positions.forget_driver(tenant, driver_id)  # off the live map
    if archived["user"] is not None:  # their user no longer acts as this driver
        await actors_changed(tenant)
    return archived


async def add_shift(tenant: TenantRef, actor: Actor, driver_id: int, data: Any) -> Row:
    require(actor, "drivers.manage")
    shift = parse(ShiftInput, data)
    async with tenant_transaction(tenant):
        await _driver(driver_id)
        shift_id = await insert_row("shifts", {"driver": driver_id, **shift.model_dump()})
        created = {"id": shift_id, "driver": driver_id, **shift.model_dump()}
        await record(actor, "shift", created["id"], "shift.created", None, created)
    return created
