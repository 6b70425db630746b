"""Drivers: profile, status, skills, shifts and last known position."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, model_validator

from patone.core.common import topics
from patone.core.common.activity import emit, record
from patone.core.common.inputs import Input, Name, Phone, parse
from patone.core.common.permissions import Actor, PermissionDenied, require
from patone.core.common.rows import (
    fetch_records,
    insert_row,
    record_by_id,
    update_row,
)
from patone.core.identity.users import actors_changed
from patone.core.runtime.clock import now
from patone.core.runtime.db import engine
from patone.core.runtime.errors import UserError
from patone.core.tables.fleet import DriverRow, DriverStatus, ShiftRow
from patone.tenants.isolation import TenantRef, tenant_transaction

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


class ShiftInput(Input):
    starts_at: datetime
    ends_at: datetime

    @model_validator(mode="after")
    def _order(self) -> ShiftInput:
        if self.ends_at <= self.starts_at:
            raise ValueError("a shift must end after it starts")
        return self


async def driver_row(driver_id: int) -> DriverRow:
    """One driver, in the caller's tenant transaction, or NotFound on `driver_id`."""
    return await record_by_id(DriverRow, driver_id, what="driver", field="driver_id")


async def get_driver(tenant: TenantRef, actor: Actor, driver_id: int) -> DriverRow:
    require(actor, "drivers.view")
    async with tenant_transaction(tenant):
        return await driver_row(driver_id)


async def list_drivers(
    tenant: TenantRef, actor: Actor, *, status: DriverStatus | None = None
) -> list[DriverRow]:
    require(actor, "drivers.view")
    async with tenant_transaction(tenant):
        return await fetch_records(
            DriverRow,
            f"SELECT {DriverRow.columns()} FROM drivers WHERE archived_at IS NULL "
            "AND ($1::varchar IS NULL OR status = $1) ORDER BY name, id",
            status,
        )


async def _check_user_free(user_id: int) -> None:
    rows = await engine.fetch(
        'SELECT u.id, (SELECT d.id FROM drivers d WHERE d."user" = u.id AND d.archived_at IS NULL '
        "LIMIT 1) AS driver FROM users u WHERE u.id = $1",
        user_id,
    )
    if not rows:
        raise UserError("not_found", "no such user", "user_id")
    if rows[0]["driver"] is not None:
        raise UserError("taken", "this user already signs in as another driver", "user_id")


async def create_driver(tenant: TenantRef, actor: Actor, data: Any) -> DriverRow:
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
        created = await driver_row(driver_id)
        await record(actor, "driver", created.id, "driver.created", None, created.as_dict())
    if driver.user_id is not None:  # that user now acts as this driver
        await actors_changed(tenant)
    return created


async def update_driver(tenant: TenantRef, actor: Actor, driver_id: int, data: Any) -> DriverRow:
    require(actor, "drivers.manage")
    changes = parse(DriverChanges, data).model_dump(exclude_unset=True)
    async with tenant_transaction(tenant):
        before = await driver_row(driver_id)
        return await _change(actor, before, changes)


async def _audited(actor: Actor, driver_id: int, changes: dict[str, Any], action: str) -> DriverRow:
    """Change a driver and log it with the row before and after."""
    before = await driver_row(driver_id)
    await update_row("drivers", driver_id, changes)
    after = await driver_row(driver_id)
    await record(actor, "driver", driver_id, action, before.as_dict(), after.as_dict())
    return after


async def _change(actor: Actor, before: DriverRow, changes: dict[str, Any]) -> DriverRow:
    """Write a driver's changes (in the caller's tenant transaction), logged; a new status is
    emitted for the dispatch engine (`driver.status_changed`: a driver now available is
    offered work). A driver who stops working loses their live offer: dispatch's to withdraw
    (`dispatch.fleet.update_driver`)."""
    driver_id = before.id
    at = now()
    duty = _duty_change(before.status, str(changes.get("status") or before.status), at)
    after = await _audited(
        actor, driver_id, {**changes, **duty, "updated_at": at}, "driver.updated"
    )
    if before.status != after.status:
        await emit(
            topics.DRIVER_STATUS_CHANGED,
            driver_id,
            topics.DriverStatusChanged(driver_id, from_=before.status, to=after.status),
        )
    return after


def _duty_change(was: str, becomes: str, at: datetime) -> dict[str, Any]:
    """`on_duty_since` for a status change: set when an off-duty driver comes on duty, cleared
    when they go off duty; a break, and coming back from one, leave it alone (a break is part
    of the day's duty, and the engine measures a driver's load against that time)."""
    if was == DriverStatus.off_duty and becomes != DriverStatus.off_duty:
        return {"on_duty_since": at}
    if becomes == DriverStatus.off_duty and was != DriverStatus.off_duty:
        return {"on_duty_since": None}
    return {}


# What a driver may set themselves; `busy` is the dispatch engine's, set when they take a job.
OWN_STATUSES = (DriverStatus.available, DriverStatus.on_break, DriverStatus.off_duty)


def _on_a_job(number: int, wanted: DriverStatus) -> str:
    if wanted == DriverStatus.available:
        return f"you are on job {number}; you are available again once it ends"
    going = "going off duty" if wanted == DriverStatus.off_duty else "taking a break"
    return (
        f"you are on job {number}: finish it, or ask a dispatcher to hand it to someone else, "
        f"before {going}"
    )


class OwnStatus(Input):
    status: DriverStatus


async def set_own_status(tenant: TenantRef, actor: Actor, status: Any) -> DriverRow:
    """A signed-in driver goes on duty, on a break or off duty: their own driver only (the
    actor's `driver_id`), never while a job they accepted is still open."""
    if actor.driver_id is None:
        raise PermissionDenied("drivers.manage")  # not a driver: only managers set statuses
    wanted = parse(OwnStatus, {"status": status}).status
    if wanted not in OWN_STATUSES:
        raise UserError(
            "invalid_choice",
            "busy is set when you take a job; choose available, on break or off duty",
            "status",
        )
    async with tenant_transaction(tenant):
        # Locked, so the engine cannot hand them a job between the check and the change.
        found = await fetch_records(
            DriverRow,
            f"SELECT {DriverRow.columns()} FROM drivers WHERE id = $1 FOR UPDATE",
            actor.driver_id,
        )
        if not found or found[0].archived_at is not None:
            raise UserError("not_found", "you are no longer one of the company's drivers")
        before = found[0]
        jobs = await engine.fetch(
            "SELECT number FROM service_requests WHERE driver = $1 "
            "AND status IN ('assigned', 'en_route', 'on_scene', 'in_progress') ORDER BY id",
            actor.driver_id,
        )
        if jobs:
            raise UserError("job_in_progress", _on_a_job(jobs[0]["number"], wanted), "status")
        if before.status == wanted:
            return before
        return await _change(actor, before, {"status": wanted})


async def archive_driver(tenant: TenantRef, actor: Actor, driver_id: int) -> DriverRow:
    """Take the driver off the roster, off duty (their live offer and their place on the
    live map are dispatch's: `dispatch.fleet.archive_driver`)."""
    require(actor, "drivers.manage")
    async with tenant_transaction(tenant):
        archived = await archive_in_transaction(actor, driver_id)
    await after_archiving(tenant, archived)
    return archived


async def archive_in_transaction(actor: Actor, driver_id: int) -> DriverRow:
    """`archive_driver`'s change, in the caller's tenant transaction (permission checked);
    the caller calls `after_archiving` after the commit."""
    return await _audited(
        actor,
        driver_id,
        {"archived_at": now(), "status": DriverStatus.off_duty.value},
        "driver.archived",
    )


async def after_archiving(tenant: TenantRef, archived: DriverRow) -> None:
    """Once archiving a driver has committed: their user (if any) no longer acts as them."""
    if archived.user is not None:
        await actors_changed(tenant)


async def add_shift(tenant: TenantRef, actor: Actor, driver_id: int, data: Any) -> ShiftRow:
    require(actor, "drivers.manage")
    shift = parse(ShiftInput, data)
    async with tenant_transaction(tenant):
        await driver_row(driver_id)
        shift_id = await insert_row("shifts", {"driver": driver_id, **shift.model_dump()})
        created = ShiftRow(id=shift_id, driver=driver_id, **shift.model_dump())
        await record(actor, "shift", created.id, "shift.created", None, created.as_dict())
    return created
