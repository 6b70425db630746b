"""Live driver positions in the API: send GPS pings, read and follow the live map."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Any

import strawberry
from strawberry.types import Info

from patone.core.common.permissions import require
from patone.core.dispatch import positions as service
from patone.core.dispatch import tracking
from patone.core.runtime.errors import UserError as DomainUserError
from patone.graphql.context import Context
from patone.graphql.ids import pk_of
from patone.graphql.parts import part
from patone.graphql.types import RequestStatus, UserError, attempt, gid

# The API's names of the fields a ping refusal can name.
_FIELD_NAMES = {
    "driver_id": "driverId",
    "accuracy_m": "accuracyM",
    "speed_mps": "speedMps",
    "heading_deg": "headingDeg",
    "recorded_at": "recordedAt",
}


@strawberry.type(name="DriverPosition", description="A driver's latest known position.")
class DriverPositionType:
    driver_id: strawberry.ID
    lat: float
    lng: float
    accuracy_m: float
    speed_mps: float | None
    heading_deg: float | None
    recorded_at: datetime
    distance_m: float | None = strawberry.field(
        description="Metres from the point searched (nearbyDrivers only)."
    )

    @classmethod
    def of(cls, position: service.DriverPosition) -> DriverPositionType:
        return cls(
            driver_id=gid("Driver", position.driver_id),
            lat=position.lat,
            lng=position.lng,
            accuracy_m=position.accuracy_m,
            speed_mps=position.speed_mps,
            heading_deg=position.heading_deg,
            recorded_at=position.recorded_at,
            distance_m=position.distance_m,
        )


@strawberry.type(
    description="What the customer's tracking page shows: the request, its driver and ETA, and "
    "the driver's live position while they are on the way or on scene (null otherwise)."
)
class RequestTracking:
    request_id: strawberry.ID
    number: int
    status: RequestStatus
    eta_at: datetime | None
    driver_name: str | None
    driver_truck: str | None
    position: DriverPositionType | None

    @classmethod
    def of(cls, shown: tracking.Tracking) -> RequestTracking:
        return cls(
            request_id=gid("ServiceRequest", shown.request_id),
            number=shown.number,
            status=RequestStatus(shown.status),
            eta_at=shown.eta_at,
            driver_name=shown.driver_name,
            driver_truck=shown.driver_truck,
            position=DriverPositionType.of(shown.position) if shown.position else None,
        )


@strawberry.input(description="One GPS fix. Drivers may leave driverId out (their own).")
class DriverPingInput:
    lat: float
    lng: float
    accuracy_m: float
    recorded_at: datetime
    driver_id: strawberry.ID | None = None
    speed_mps: float | None = None
    heading_deg: float | None = None


@strawberry.type(description="Why one ping (`index`, from 0) was refused.")
class PingRefusal:
    index: int
    field: str
    code: str
    message: str


@strawberry.type
class RecordDriverPingsPayload:
    accepted: int = strawberry.field(description="Stored as the drivers' newest positions.")
    ignored: int = strawberry.field(description="Older than the driver's latest: not stored.")
    refused: list[PingRefusal] = strawberry.field(
        description="When any ping is refused, none is stored."
    )
    user_errors: list[UserError]


def _driver_ids(ids: list[strawberry.ID] | None) -> list[int] | None:
    return None if ids is None else [pk_of(i, "Driver", "driverIds") for i in ids]


def _ping(given: DriverPingInput) -> dict[str, Any]:
    ping: dict[str, Any] = {
        "lat": given.lat,
        "lng": given.lng,
        "accuracy_m": given.accuracy_m,
        "recorded_at": given.recorded_at,
        "speed_mps": given.speed_mps,
        "heading_deg": given.heading_deg,
    }
    if given.driver_id is not None:
        ping["driver_id"] = pk_of(given.driver_id, "Driver", "driverId")
    return ping


async def _record(ctx: Context, pings: list[DriverPingInput]) -> service.PingReport:
    raw: list[Any] = []
    bad_ids: list[service.PingRefusal] = []
    for index, given in enumerate(pings):
        try:
            raw.append(_ping(given))
        except DomainUserError as error:
            bad_ids.append(service.PingRefusal(index, "driver_id", error.code, error.message))
    if bad_ids:
        return service.PingReport(refused=bad_ids)
    return await service.record_pings(ctx.tenant, ctx.actor, raw)


@part("Query", 50)
@strawberry.type
class PositionQueries:
    @strawberry.field(description="Drivers' latest positions (all, or these drivers).")
    async def driver_positions(
        self, info: Info[Context, None], driver_ids: list[strawberry.ID] | None = None
    ) -> list[DriverPositionType]:
        require(info.context.actor, "drivers.view")
        found = await service.driver_positions(info.context.tenant, _driver_ids(driver_ids))
        return [DriverPositionType.of(p) for p in found]

    @strawberry.field(description="Drivers within radiusM metres of a point, nearest first.")
    async def nearby_drivers(
        self, info: Info[Context, None], lat: float, lng: float, radius_m: float, limit: int = 20
    ) -> list[DriverPositionType]:
        require(info.context.actor, "drivers.view")
        limit = max(1, min(limit, 200))
        found = await service.nearby_drivers(info.context.tenant, lat, lng, radius_m, limit)
        return [DriverPositionType.of(p) for p in found]


@part("Mutation", 50)
@strawberry.type
class PositionMutations:
    @strawberry.mutation(
        description="GPS pings of drivers (a driver's own; any driver's with drivers.manage)."
    )
    async def record_driver_pings(
        self, info: Info[Context, None], pings: list[DriverPingInput]
    ) -> RecordDriverPingsPayload:
        report, errors = await attempt(_record(info.context, pings))
        report = report or service.PingReport()
        return RecordDriverPingsPayload(
            accepted=report.accepted,
            ignored=report.ignored,
            refused=[
                PingRefusal(
                    index=r.index,
                    field=_FIELD_NAMES.get(r.field, r.field),
                    code=r.code,
                    message=r.message,
                )
                for r in report.refused
            ],
            user_errors=errors,
        )


@part("Subscription", 20)
@strawberry.type
class PositionSubscription:
    @strawberry.subscription(
        description="Drivers' positions as they arrive (the dispatch map): one list per batch "
        "of pings, the newest of each driver; only these drivers' when driverIds is given."
    )
    async def driver_positions(
        self, info: Info[Context, None], driver_ids: list[strawberry.ID] | None = None
    ) -> AsyncGenerator[list[DriverPositionType], None]:
        require(info.context.actor, "drivers.view")
        live = service.subscribe_positions(info.context.tenant, _driver_ids(driver_ids))
        try:
            async for batch in live:
                yield [DriverPositionType.of(p) for p in batch]
        finally:
            await live.aclose()

    @strawberry.subscription(
        description="Watch one request come to you: its state now, then at every change of its "
        "status, driver or ETA and every ping of its driver, until it is completed or "
        "cancelled. For the request's customer (a customer token), its driver and dispatchers."
    )
    async def request_tracking(
        self, info: Info[Context, None], request_id: strawberry.ID
    ) -> AsyncGenerator[RequestTracking, None]:
        ctx = info.context
        live = tracking.track_request(ctx.tenant, ctx.actor, pk_of(request_id, "ServiceRequest"))
        try:
            async for shown in live:
                yield RequestTracking.of(shown)
        finally:
            await live.aclose()
