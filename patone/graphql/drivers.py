"""Drivers in the API."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types import Info

from patone.core.dispatch import fleet
from patone.core.domain import drivers as service
from patone.core.tables.fleet import DriverRow, ShiftRow
from patone.graphql.context import Context
from patone.graphql.ids import pk_of
from patone.graphql.parts import part
from patone.graphql.types import Driver, DriverStatus, UserError, attempt, given


@strawberry.input
class CreateDriverInput:
    name: str
    phone: str | None = None
    skills: list[str] = strawberry.field(default_factory=list)
    truck: str = ""
    user_id: strawberry.ID | None = strawberry.field(
        default=None, description="The staff user (role driver) who signs in as this driver."
    )


@strawberry.input
class UpdateDriverInput:
    name: str | None = strawberry.UNSET
    phone: str | None = strawberry.UNSET
    skills: list[str] | None = strawberry.UNSET
    truck: str | None = strawberry.UNSET
    status: DriverStatus | None = strawberry.UNSET


@strawberry.input
class ShiftInput:
    starts_at: datetime
    ends_at: datetime


@strawberry.type
class Shift:
    starts_at: datetime
    ends_at: datetime


@strawberry.type
class ShiftPayload:
    shift: Shift | None
    user_errors: list[UserError]


@strawberry.type
class DriverPayload:
    driver: Driver | None
    user_errors: list[UserError]


def _payload(row: DriverRow | None, errors: list[UserError]) -> DriverPayload:
    return DriverPayload(driver=Driver.from_row(row) if row else None, user_errors=errors)


@part("Query", 30)
@strawberry.type
class DriverQueries:
    @strawberry.field(description="Drivers who are not archived, by name.")
    async def drivers(
        self, info: Info[Context, None], status: DriverStatus | None = None
    ) -> list[Driver]:
        from patone.core.tables.fleet import DriverStatus as DomainStatus

        rows = await service.list_drivers(
            info.context.tenant,
            info.context.actor,
            status=DomainStatus(status.value) if status else None,
        )
        info.context.loaders.prime("driver", rows)
        return [Driver.from_row(r) for r in rows]


@part("Mutation", 30)
@strawberry.type
class DriverMutations:
    @strawberry.mutation
    async def create_driver(
        self, info: Info[Context, None], input: CreateDriverInput
    ) -> DriverPayload:
        ctx = info.context

        async def run() -> DriverRow:
            data = given(input)
            if input.user_id is not None:
                data["user_id"] = pk_of(input.user_id, "User", "userId")
            return await service.create_driver(ctx.tenant, ctx.actor, data)

        return _payload(*await attempt(run()))

    @strawberry.mutation
    async def update_driver(
        self, info: Info[Context, None], id: strawberry.ID, input: UpdateDriverInput
    ) -> DriverPayload:
        ctx = info.context

        async def run() -> DriverRow:
            return await fleet.update_driver(
                ctx.tenant, ctx.actor, pk_of(id, "Driver"), given(input)
            )

        return _payload(*await attempt(run()))

    @strawberry.mutation(
        description="A signed-in driver goes on duty (AVAILABLE), on a break (ON_BREAK) or off "
        "duty (OFF_DUTY). BUSY is set by dispatch when the driver takes a job; while a job is "
        "open the status cannot be changed."
    )
    async def set_my_status(self, info: Info[Context, None], status: DriverStatus) -> DriverPayload:
        ctx = info.context

        async def run() -> DriverRow:
            return await fleet.set_own_status(ctx.tenant, ctx.actor, status.value)

        return _payload(*await attempt(run()))

    @strawberry.mutation(description="The driver's latest position (drivers may set their own).")
    async def update_driver_position(
        self, info: Info[Context, None], id: strawberry.ID, lat: float, lng: float
    ) -> DriverPayload:
        ctx = info.context

        async def run() -> DriverRow:
            return await fleet.set_position(
                ctx.tenant, ctx.actor, pk_of(id, "Driver"), {"lat": lat, "lng": lng}
            )

        return _payload(*await attempt(run()))

    @strawberry.mutation
    async def archive_driver(self, info: Info[Context, None], id: strawberry.ID) -> DriverPayload:
        ctx = info.context

        async def run() -> DriverRow:
            return await fleet.archive_driver(ctx.tenant, ctx.actor, pk_of(id, "Driver"))

        return _payload(*await attempt(run()))

    @strawberry.mutation
    async def add_shift(
        self, info: Info[Context, None], driver_id: strawberry.ID, input: ShiftInput
    ) -> ShiftPayload:
        ctx = info.context

        async def run() -> ShiftRow:
            return await service.add_shift(
                ctx.tenant, ctx.actor, pk_of(driver_id, "Driver", "driverId"), given(input)
            )

        row, errors = await attempt(run())
        shift = Shift(starts_at=row.starts_at, ends_at=row.ends_at) if row else None
        return ShiftPayload(shift=shift, user_errors=errors)
