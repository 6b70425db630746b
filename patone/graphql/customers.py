"""Customers, vehicles and memberships in the API."""

from __future__ import annotations

from datetime import date

import strawberry
from strawberry.types import Info

from patone.core.domain import customers as service
from patone.core.runtime.errors import NotFound
from patone.core.tables.customers import CustomerRow, MembershipRow, VehicleRow
from patone.graphql.context import Context
from patone.graphql.ids import pk_of
from patone.graphql.parts import part
from patone.graphql.types import (
    Connection,
    Customer,
    Membership,
    UserError,
    Vehicle,
    attempt,
    connection,
    given,
    window,
)


@strawberry.input
class VehicleInput:
    make: str = ""
    model: str = ""
    year: int | None = None
    colour: str = ""
    plate: str = ""
    vin: str = ""


@strawberry.input
class CreateCustomerInput:
    name: str
    phone: str | None = None
    email: str | None = None
    notes: str = ""
    vehicles: list[VehicleInput] = strawberry.field(default_factory=list)


@strawberry.input
class UpdateCustomerInput:
    name: str | None = strawberry.UNSET
    phone: str | None = strawberry.UNSET
    email: str | None = strawberry.UNSET
    notes: str | None = strawberry.UNSET


@strawberry.input
class UpdateVehicleInput:
    make: str | None = strawberry.UNSET
    model: str | None = strawberry.UNSET
    year: int | None = strawberry.UNSET
    colour: str | None = strawberry.UNSET
    plate: str | None = strawberry.UNSET
    vin: str | None = strawberry.UNSET


@strawberry.input
class MembershipInput:
    provider: str
    number: str
    valid_until: date | None = None


@strawberry.type
class MembershipPayload:
    membership: Membership | None
    user_errors: list[UserError]


@strawberry.type
class CustomerPayload:
    customer: Customer | None
    user_errors: list[UserError]


@strawberry.type
class VehiclePayload:
    vehicle: Vehicle | None
    user_errors: list[UserError]


def _customer(row: CustomerRow | None, errors: list[UserError]) -> CustomerPayload:
    return CustomerPayload(customer=Customer.from_row(row) if row else None, user_errors=errors)


@part("Query", 20)
@strawberry.type
class CustomerQueries:
    @strawberry.field(description="Customers by id, a page at a time; or a search, by name.")
    async def customers(
        self,
        info: Info[Context, None],
        first: int = 50,
        after: str | None = None,
        search: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Customer]:
        ctx = info.context
        page = await service.list_customers(
            ctx.tenant, ctx.actor, search=search, **vars(window(first, after, last, before))
        )
        return connection(page, Customer.from_row)

    @strawberry.field
    async def customer(self, info: Info[Context, None], id: strawberry.ID) -> Customer | None:
        ctx = info.context
        try:
            row = await service.get_customer(ctx.tenant, ctx.actor, pk_of(id, "Customer"))
        except NotFound:
            return None
        return Customer.from_row(row)


@part("Mutation", 20)
@strawberry.type
class CustomerMutations:
    @strawberry.mutation(description="Create a customer; a retried idempotency key returns it.")
    async def create_customer(
        self,
        info: Info[Context, None],
        input: CreateCustomerInput,
        idempotency_key: str | None = None,
    ) -> CustomerPayload:
        ctx = info.context
        return _customer(
            *await attempt(
                service.create_customer(
                    ctx.tenant, ctx.actor, given(input), idempotency_key=idempotency_key
                )
            )
        )

    @strawberry.mutation
    async def update_customer(
        self, info: Info[Context, None], id: strawberry.ID, input: UpdateCustomerInput
    ) -> CustomerPayload:
        ctx = info.context

        async def run() -> CustomerRow:
            return await service.update_customer(
                ctx.tenant, ctx.actor, pk_of(id, "Customer"), given(input)
            )

        return _customer(*await attempt(run()))

    @strawberry.mutation
    async def archive_customer(
        self, info: Info[Context, None], id: strawberry.ID
    ) -> CustomerPayload:
        ctx = info.context

        async def run() -> CustomerRow:
            return await service.archive_customer(ctx.tenant, ctx.actor, pk_of(id, "Customer"))

        return _customer(*await attempt(run()))

    @strawberry.mutation
    async def add_vehicle(
        self, info: Info[Context, None], customer_id: strawberry.ID, input: VehicleInput
    ) -> VehiclePayload:
        ctx = info.context

        async def run() -> VehicleRow:
            return await service.add_vehicle(
                ctx.tenant, ctx.actor, pk_of(customer_id, "Customer", "customerId"), given(input)
            )

        row, errors = await attempt(run())
        return VehiclePayload(vehicle=Vehicle.from_row(row) if row else None, user_errors=errors)

    @strawberry.mutation
    async def update_vehicle(
        self, info: Info[Context, None], id: strawberry.ID, input: UpdateVehicleInput
    ) -> VehiclePayload:
        ctx = info.context

        async def run() -> VehicleRow:
            return await service.update_vehicle(
                ctx.tenant, ctx.actor, pk_of(id, "Vehicle"), given(input)
            )

        row, errors = await attempt(run())
        return VehiclePayload(vehicle=Vehicle.from_row(row) if row else None, user_errors=errors)

    @strawberry.mutation
    async def archive_vehicle(self, info: Info[Context, None], id: strawberry.ID) -> VehiclePayload:
        ctx = info.context

        async def run() -> VehicleRow:
            return await service.archive_vehicle(ctx.tenant, ctx.actor, pk_of(id, "Vehicle"))

        row, errors = await attempt(run())
        return VehiclePayload(vehicle=Vehicle.from_row(row) if row else None, user_errors=errors)

    @strawberry.mutation
    async def add_membership(
        self, info: Info[Context, None], customer_id: strawberry.ID, input: MembershipInput
    ) -> MembershipPayload:
        ctx = info.context

        async def run() -> MembershipRow:
            return await service.add_membership(
                ctx.tenant, ctx.actor, pk_of(customer_id, "Customer", "customerId"), given(input)
            )

        row, errors = await attempt(run())
        membership = Membership.from_row(row) if row else None
        return MembershipPayload(membership=membership, user_errors=errors)
