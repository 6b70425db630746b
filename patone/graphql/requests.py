"""Service requests in the API: the board query, one request, and their mutations."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

import strawberry
from strawberry.types import Info

from patone.core.domain import service_requests as service
from patone.core.domain.service_requests import RequestFilter as DomainFilter
from patone.core.runtime.errors import UserError as DomainUserError
from patone.core.tables.requests import RequestRow
from patone.graphql.context import Context
from patone.graphql.customers import VehicleInput
from patone.graphql.ids import pk_of
from patone.graphql.parts import part
from patone.graphql.types import (
    Connection,
    Priority,
    RequestSource,
    RequestStatus,
    ServiceRequest,
    UserError,
    attempt,
    connection,
    given,
    user_errors,
    window,
)


@strawberry.enum
class RequestOrder(Enum):
    NEWEST = "newest"
    OLDEST = "oldest"
    PRIORITY = "priority"


@strawberry.input
class RequestFilter:
    status: list[RequestStatus] | None = None
    priority: list[Priority] | None = None
    driver_id: strawberry.ID | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    search: str | None = None
    open_only: bool = False


@strawberry.input
class LocationInput:
    lat: float
    lng: float
    address: str = ""


@strawberry.input(
    description="A motorist sent with a job: found among the company's customers by phone "
    "(and their vehicle by plate), or added."
)
class MotoristInput:
    name: str
    phone: str
    vehicle: VehicleInput | None = strawberry.field(
        default=None, description="The vehicle; its plate is required."
    )


@strawberry.input
class CreateServiceRequestInput:
    customer_id: strawberry.ID | None = strawberry.field(
        default=None, description="An existing customer; or give `motorist` instead."
    )
    vehicle_id: strawberry.ID | None = None
    motorist: MotoristInput | None = strawberry.field(
        default=None,
        description="The motorist's details instead of `customerId` (partners, who read no "
        "customers, send jobs this way).",
    )
    service_type: str
    priority: Priority = Priority.NORMAL
    pickup: LocationInput
    destination: LocationInput | None = None
    notes: str = ""
    quoted_price: int | None = None
    source: RequestSource = RequestSource.ADMIN


@strawberry.input
class UpdateServiceRequestInput:
    priority: Priority | None = strawberry.UNSET
    pickup: LocationInput | None = strawberry.UNSET
    destination: LocationInput | None = strawberry.UNSET
    notes: str | None = strawberry.UNSET
    quoted_price: int | None = strawberry.UNSET


@strawberry.type
class ServiceRequestPayload:
    service_request: ServiceRequest | None
    user_errors: list[UserError]


def _payload(row: RequestRow | None, errors: list[UserError]) -> ServiceRequestPayload:
    return ServiceRequestPayload(
        service_request=ServiceRequest.from_row(row) if row else None, user_errors=errors
    )


def _filter(value: RequestFilter | None) -> DomainFilter:
    if value is None:
        return DomainFilter()
    return DomainFilter(
        statuses=tuple(s.value for s in value.status or ()),
        priorities=tuple(p.value for p in value.priority or ()),
        driver_id=pk_of(value.driver_id, "Driver", "driverId") if value.driver_id else None,
        created_from=value.created_from,
        created_to=value.created_to,
        text=value.search or "",
        open_only=value.open_only,
    )


@part("Query", 10)
@strawberry.type
class RequestQueries:
    @strawberry.field(description="Service requests, a page at a time (the dispatch board).")
    async def service_requests(
        self,
        info: Info[Context, None],
        first: int = 50,
        after: str | None = None,
        filter: RequestFilter | None = None,
        order_by: RequestOrder = RequestOrder.NEWEST,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[ServiceRequest]:
        page = await service.list_requests(
            info.context.tenant,
            info.context.actor,
            filter=_filter(filter),
            order=order_by.value,
            **vars(window(first, after, last, before)),
        )
        info.context.loaders.prime("request", page.rows)
        return connection(page, ServiceRequest.from_row)

    @strawberry.field
    async def service_request(
        self, info: Info[Context, None], id: strawberry.ID
    ) -> ServiceRequest | None:
        try:
            row = await service.get_request(
                info.context.tenant, info.context.actor, pk_of(id, "ServiceRequest")
            )
        except DomainUserError as error:
            if error.status == 404:
                return None
            raise
        return ServiceRequest.from_row(row)


def _create_data(data: CreateServiceRequestInput) -> dict[str, Any]:
    plain = given(data)
    if data.customer_id is not None:
        plain["customer_id"] = pk_of(data.customer_id, "Customer", "customerId")
    if data.vehicle_id is not None:
        plain["vehicle_id"] = pk_of(data.vehicle_id, "Vehicle", "vehicleId")
    if plain.get("quoted_price") is None:
        plain.pop("quoted_price", None)
    return plain


@part("Mutation", 10)
@strawberry.type
class RequestMutations:
    @strawberry.mutation(description="Create a request; a retried idempotency key returns it.")
    async def create_service_request(
        self,
        info: Info[Context, None],
        input: CreateServiceRequestInput,
        idempotency_key: str | None = None,
    ) -> ServiceRequestPayload:
        try:
            data = _create_data(input)
        except DomainUserError as error:
            return _payload(None, user_errors(error))
        row, errors = await attempt(
            service.create_request(
                info.context.tenant, info.context.actor, data, idempotency_key=idempotency_key
            )
        )
        return _payload(row, errors)

    @strawberry.mutation
    async def update_service_request(
        self,
        info: Info[Context, None],
        id: strawberry.ID,
        input: UpdateServiceRequestInput,
        expected_version: int | None = None,
    ) -> ServiceRequestPayload:
        async def run() -> RequestRow:
            return await service.update_request(
                info.context.tenant,
                info.context.actor,
                pk_of(id, "ServiceRequest"),
                given(input),
                expected_version=expected_version,
            )

        return _payload(*await attempt(run()))

    @strawberry.mutation(description="Assign a pending request to a driver by hand.")
    async def assign_driver(
        self,
        info: Info[Context, None],
        id: strawberry.ID,
        driver_id: strawberry.ID,
        expected_version: int | None = None,
    ) -> ServiceRequestPayload:
        async def run() -> RequestRow:
            return await service.assign_driver(
                info.context.tenant,
                info.context.actor,
                pk_of(id, "ServiceRequest"),
                pk_of(driver_id, "Driver", "driverId"),
                expected_version=expected_version,
            )

        return _payload(*await attempt(run()))

    @strawberry.mutation(description="Move a request to its next state, with who/where/why.")
    async def transition_service_request(
        self,
        info: Info[Context, None],
        id: strawberry.ID,
        status: RequestStatus,
        reason_code: str = "",
        note: str = "",
        lat: float | None = None,
        lng: float | None = None,
        expected_version: int | None = None,
    ) -> ServiceRequestPayload:
        async def run() -> RequestRow:
            return await service.transition(
                info.context.tenant,
                info.context.actor,
                pk_of(id, "ServiceRequest"),
                status.value,
                expected_version=expected_version,
                reason_code=reason_code,
                note=note,
                lat=lat,
                lng=lng,
            )

        return _payload(*await attempt(run()))
