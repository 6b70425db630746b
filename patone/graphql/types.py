"""GraphQL object types. Each field is a column, a relation (through a DataLoader) or a small
computed value, so a later query planner can compile whole operations to SQL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime
from enum import Enum
from typing import Any, Generic, TypeVar

import strawberry
from strawberry.types import Info

from patone.core.common.paging import COUNT_CAP, Count, Page, Window
from patone.core.domain.customers import seen_by
from patone.core.runtime.errors import UserError as DomainUserError
from patone.core.runtime.errors import ValidationFailed
from patone.core.tables.customers import CustomerRow, MembershipRow, VehicleRow
from patone.core.tables.fleet import DriverRow
from patone.core.tables.identity import RoleRow, UserRow
from patone.core.tables.requests import RequestEventRow, RequestRow, ServiceTypeRow
from patone.graphql.context import Context
from patone.graphql.ids import to_global_id
from patone.graphql.parts import part

Row = dict[str, Any]
T = TypeVar("T")
X = TypeVar("X")


@strawberry.enum
class RequestStatus(Enum):
    PENDING = "pending"
    ASSIGNED = "assigned"
    EN_ROUTE = "en_route"
    ON_SCENE = "on_scene"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


@strawberry.enum
class Priority(Enum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    EMERGENCY = "emergency"


@strawberry.enum
class RequestSource(Enum):
    ADMIN = "admin"
    PORTAL = "portal"
    API = "api"


@strawberry.enum
class DriverStatus(Enum):
    OFF_DUTY = "off_duty"
    AVAILABLE = "available"
    BUSY = "busy"
    ON_BREAK = "on_break"


@strawberry.type(
    description="Why an input was refused: which field, a stable code (the API guide lists "
    "every code), a message."
)
class UserError:
    field: str | None
    code: str
    message: str


def user_errors(error: DomainUserError) -> list[UserError]:
    errors = error.errors if isinstance(error, ValidationFailed) else [error]
    return [UserError(field=_camel(e.field), code=e.code, message=e.message) for e in errors]


def _camel(field: str | None) -> str | None:
    if field is None:
        return None
    if field.startswith("config."):
        return field  # a plugin's own settings keep the names the plugin gave them
    parts = field.split("_")
    return parts[0] + "".join(p.title() for p in parts[1:])


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None
    has_previous_page: bool = strawberry.field(
        default=False,
        description="Whether rows come before this page (paging with `after` or `last`).",
    )
    start_cursor: str | None = None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    count: strawberry.Private[Callable[[], Awaitable[Count]]]  # the page's own count

    @strawberry.field
    def nodes(self) -> list[T]:
        return [edge.node for edge in self.edges]

    @strawberry.field(
        description=f"How many rows the whole list has (its filters, not its cursors), counted "
        f"up to {COUNT_CAP:,}; `totalCountCapped` says when there are more."
    )
    async def total_count(self) -> int:
        return (await self.count()).total

    @strawberry.field(description=f"Whether the list has more than {COUNT_CAP:,} rows.")
    async def total_count_capped(self) -> bool:
        return (await self.count()).capped


@strawberry.type(description="An amount of money in minor units (cents) and its currency.")
class Money:
    amount: int
    currency: str


@strawberry.type
class Location:
    lat: float
    lng: float
    address: str


@strawberry.interface(description="An object with a global id.")
class Node:
    id: strawberry.ID


def gid(type_name: str, pk: int) -> strawberry.ID:
    return strawberry.ID(to_global_id(type_name, pk))


def window(first: int, after: str | None, last: int | None, before: str | None) -> Window:
    """The page a connection field's arguments ask for: `last` (from the end, or before
    `before`) when given, else `first` (after `after`)."""
    if last is not None:
        return Window(first=None, after=after, last=last, before=before)
    return Window(first=first, after=after, before=before)


def connection(page: Page[X], node: Callable[[X], T]) -> Connection[T]:
    """A page of rows as a connection."""
    return Connection(
        edges=[Edge(cursor=c, node=node(r)) for c, r in zip(page.cursors, page.rows, strict=True)],
        page_info=PageInfo(
            has_next_page=page.has_next,
            has_previous_page=page.has_previous,
            start_cursor=page.start_cursor,
            end_cursor=page.end_cursor,
        ),
        count=page.count,
    )


@part("types", 10)
@strawberry.type
class ServiceType(Node):
    code: str
    name: str
    base_price: int
    per_distance_price: int
    after_hours_surcharge: int
    needs_destination: bool
    required_skills: list[str]
    active: bool

    @classmethod
    def from_row(cls, row: ServiceTypeRow) -> ServiceType:
        return cls(
            id=gid("ServiceType", row.id),
            code=row.code,
            name=row.name,
            base_price=row.base_price,
            per_distance_price=row.per_distance_price,
            after_hours_surcharge=row.after_hours_surcharge,
            needs_destination=row.needs_destination,
            required_skills=list(row.required_skills),
            active=row.active,
        )


@strawberry.type
class Vehicle(Node):
    make: str
    model: str
    year: int | None
    colour: str
    plate: str
    vin: str

    @classmethod
    def from_row(cls, row: VehicleRow) -> Vehicle:
        return cls(
            id=gid("Vehicle", row.id),
            make=row.make,
            model=row.model,
            year=row.year,
            colour=row.colour,
            plate=row.plate,
            vin=row.vin,
        )


@strawberry.type
class Membership:
    provider: str
    number: str
    valid_until: date | None

    @classmethod
    def from_row(cls, row: MembershipRow) -> Membership:
        return cls(provider=row.provider, number=row.number, valid_until=row.valid_until)


@strawberry.type
class Customer(Node):
    name: str
    phone: str | None
    email: str | None
    notes: str
    archived: bool
    created_at: datetime
    pk: strawberry.Private[int]

    @classmethod
    def from_row(cls, row: CustomerRow) -> Customer:
        return cls(
            id=gid("Customer", row.id),
            name=row.name,
            phone=row.phone,
            email=row.email,
            notes=row.notes,
            archived=row.archived_at is not None,
            created_at=row.created_at,
            pk=row.id,
        )

    @strawberry.field
    async def vehicles(self, info: Info[Context, None]) -> list[Vehicle]:
        from patone.core.domain.customers import list_vehicles

        rows = await list_vehicles(info.context.tenant, info.context.actor, self.pk)
        return [Vehicle.from_row(r) for r in rows]

    @strawberry.field
    async def memberships(self, info: Info[Context, None]) -> list[Membership]:
        from patone.core.domain.customers import list_memberships

        rows = await list_memberships(info.context.tenant, info.context.actor, self.pk)
        return [Membership.from_row(r) for r in rows]


@strawberry.type
class Driver(Node):
    name: str
    phone: str | None
    status: DriverStatus
    skills: list[str]
    truck: str
    pk: strawberry.Private[int]
    stored_position: strawberry.Private[tuple[float, float] | None]
    stored_seen_at: strawberry.Private[datetime | None]

    @classmethod
    def from_row(cls, row: DriverRow) -> Driver:
        position = None
        if row.last_lat is not None and row.last_lng is not None:
            position = (row.last_lat, row.last_lng)
        return cls(
            id=gid("Driver", row.id),
            name=row.name,
            phone=row.phone,
            status=DriverStatus(row.status),
            skills=list(row.skills),
            truck=row.truck,
            pk=row.id,
            stored_position=position,
            stored_seen_at=row.last_seen_at,
        )

    async def _latest(
        self, info: Info[Context, None]
    ) -> tuple[float, float, datetime | None] | None:
        """The latest ping: live from the positions store, or the drivers table's copy (which
        the history flush brings up to date seconds later) when that is as new."""
        live = await info.context.loaders.position.load(self.pk)
        stored_at = self.stored_seen_at
        if live is not None and (stored_at is None or live.recorded_at >= stored_at):
            return live.lat, live.lng, live.recorded_at
        if self.stored_position is None:
            return None
        return (*self.stored_position, stored_at)

    @strawberry.field(description="Where the driver's latest GPS ping put them (live).")
    async def last_position(self, info: Info[Context, None]) -> Location | None:
        latest = await self._latest(info)
        return Location(lat=latest[0], lng=latest[1], address="") if latest else None

    @strawberry.field(description="When the driver's latest GPS ping was recorded.")
    async def last_seen_at(self, info: Info[Context, None]) -> datetime | None:
        latest = await self._latest(info)
        return latest[2] if latest else None


@strawberry.type
class RequestEvent:
    from_status: RequestStatus | None
    to_status: RequestStatus
    actor: str
    reason_code: str
    note: str
    location: Location | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: RequestEventRow) -> RequestEvent:
        location = None
        if row.lat is not None and row.lng is not None:
            location = Location(lat=row.lat, lng=row.lng, address="")
        return cls(
            from_status=RequestStatus(row.from_status) if row.from_status else None,
            to_status=RequestStatus(row.to_status),
            actor=f"{row.actor_type}:{row.actor_id}",
            reason_code=row.reason_code,
            note=row.note,
            location=location,
            created_at=row.created_at,
        )


@strawberry.type
class ServiceRequest(Node):
    number: int
    status: RequestStatus
    priority: Priority
    source: RequestSource
    pickup: Location
    destination: Location | None
    notes: str
    quoted_price: Money
    cancel_reason: str
    version: int
    created_at: datetime
    updated_at: datetime
    assigned_at: datetime | None
    en_route_at: datetime | None
    on_scene_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    offers_made: int = strawberry.field(
        default=0, description="Offers made to drivers for it so far."
    )
    needs_dispatcher: bool = strawberry.field(
        default=False,
        description="The engine ran out of offers (or may not dispatch it): a person must.",
    )
    eta_at: datetime | None = strawberry.field(
        default=None, description="When the driver is expected at the scene, as last shown."
    )
    pk: strawberry.Private[int]
    customer_pk: strawberry.Private[int]
    vehicle_pk: strawberry.Private[int | None]
    service_type_pk: strawberry.Private[int]
    driver_pk: strawberry.Private[int | None]

    @classmethod
    def from_row(cls, row: RequestRow) -> ServiceRequest:
        destination = None
        if row.destination_lat is not None and row.destination_lng is not None:
            destination = Location(
                lat=row.destination_lat,
                lng=row.destination_lng,
                address=row.destination_address,
            )
        return cls(
            id=gid("ServiceRequest", row.id),
            number=row.number,
            status=RequestStatus(row.status),
            priority=Priority(row.priority),
            source=RequestSource(row.source),
            pickup=Location(lat=row.pickup_lat, lng=row.pickup_lng, address=row.pickup_address),
            destination=destination,
            notes=row.notes,
            quoted_price=Money(amount=row.quoted_price, currency=row.currency),
            cancel_reason=row.cancel_reason,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
            assigned_at=row.assigned_at,
            en_route_at=row.en_route_at,
            on_scene_at=row.on_scene_at,
            started_at=row.started_at,
            completed_at=row.completed_at,
            cancelled_at=row.cancelled_at,
            offers_made=row.offers_made,
            needs_dispatcher=row.needs_dispatcher,
            eta_at=row.eta_at,
            pk=row.id,
            customer_pk=row.customer,
            vehicle_pk=row.vehicle,
            service_type_pk=row.service_type,
            driver_pk=row.driver,
        )

    @strawberry.field
    async def customer(self, info: Info[Context, None]) -> Customer:
        row = await info.context.loaders.customer.load(self.customer_pk)
        assert row is not None  # a foreign key guarantees it
        return Customer.from_row(seen_by(info.context.actor, row))

    @strawberry.field
    async def vehicle(self, info: Info[Context, None]) -> Vehicle | None:
        if self.vehicle_pk is None:
            return None
        row = await info.context.loaders.vehicle.load(self.vehicle_pk)
        return Vehicle.from_row(row) if row else None

    @strawberry.field
    async def service_type(self, info: Info[Context, None]) -> ServiceType:
        row = await info.context.loaders.service_type.load(self.service_type_pk)
        assert row is not None
        return ServiceType.from_row(row)

    @strawberry.field
    async def driver(self, info: Info[Context, None]) -> Driver | None:
        if self.driver_pk is None:
            return None
        row = await info.context.loaders.driver.load(self.driver_pk)
        return Driver.from_row(row) if row else None

    @strawberry.field(description="Every transition, oldest first.")
    async def events(self, info: Info[Context, None]) -> list[RequestEvent]:
        return [RequestEvent.from_row(r) for r in await info.context.loaders.events.load(self.pk)]


@part("types", 20)
@strawberry.type
class User(Node):
    email: str
    name: str
    role: str
    active: bool
    must_change_password: bool = False

    @classmethod
    def from_row(cls, row: UserRow) -> User:
        return cls(
            id=gid("User", row.id),
            email=row.email,
            name=row.name,
            role=row.role,
            active=row.active,
            must_change_password=row.must_change_password,
        )


@strawberry.type
class Role:
    name: str
    title: str
    permissions: list[str]

    @classmethod
    def from_row(cls, row: RoleRow) -> Role:
        return cls(name=row.name, title=row.title, permissions=list(row.permissions))


def given(value: Any) -> Any:
    """An input as plain data for a service: UNSET fields left out, enums as their values."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list):
        return [given(v) for v in value]
    if hasattr(value, "__strawberry_definition__"):
        return {
            name: given(v)
            for name, v in vars(value).items()
            if v is not strawberry.UNSET and not name.startswith("_")
        }
    return value


async def attempt(call: Any) -> tuple[Any, list[UserError]]:
    """Await a service call; a refusal becomes user errors instead of an exception."""
    try:
        return await call, []
    except DomainUserError as error:
        return None, user_errors(error)
