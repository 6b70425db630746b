"""What the company sells and the calls for help it serves."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from piccolo.columns import (
    Array,
    BigInt,
    Boolean,
    DoublePrecision,
    ForeignKey,
    Integer,
    LazyTableReference,
    OnDelete,
    OnUpdate,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from patone.core.runtime.db import engine
from patone.core.tables.customers import Customer, Vehicle
from patone.core.tables.fleet import Driver
from patone.core.tables.records import Record


class Priority(StrEnum):
    low = "low"
    normal = "normal"
    high = "high"
    emergency = "emergency"


class RequestStatus(StrEnum):
    pending = "pending"
    assigned = "assigned"
    en_route = "en_route"
    on_scene = "on_scene"
    in_progress = "in_progress"
    completed = "completed"
    cancelled = "cancelled"


class RequestSource(StrEnum):
    admin = "admin"
    portal = "portal"
    api = "api"


class ServiceType(Table, tablename="service_types", db=engine):
    """A service the company sells and its price (integer minor units)."""

    code = Varchar(length=40, unique=True)
    name = Varchar(length=100)
    base_price = Integer(default=0)
    per_distance_price = Integer(default=0)  # per km or mile, as the tenant's units say
    after_hours_surcharge = Integer(default=0)
    needs_destination = Boolean(default=False)
    required_skills = Array(base_column=Varchar(length=40), default=list)
    active = Boolean(default=True)
    updated_at = Timestamptz()


@dataclass(frozen=True, slots=True)
class ServiceTypeRow(Record):
    table: ClassVar[type[Table]] = ServiceType
    id: int
    code: str
    name: str
    base_price: int
    per_distance_price: int
    after_hours_surcharge: int
    needs_destination: bool
    required_skills: list[str]
    active: bool
    updated_at: datetime


class ServiceRequest(Table, tablename="service_requests", db=engine):
    """A call for help and its journey from pending to completed or cancelled."""

    number = BigInt(unique=True)
    customer = ForeignKey(references=Customer, on_delete=OnDelete.restrict, null=False, index=True)
    vehicle = ForeignKey(references=Vehicle, on_delete=OnDelete.restrict, null=True, default=None)
    service_type = ForeignKey(references=ServiceType, on_delete=OnDelete.restrict, null=False)
    priority = Varchar(length=20, choices=Priority, default=Priority.normal)
    status = Varchar(length=20, choices=RequestStatus, default=RequestStatus.pending)
    source = Varchar(length=20, choices=RequestSource, default=RequestSource.admin)
    pickup_lat = DoublePrecision()
    pickup_lng = DoublePrecision()
    pickup_address = Varchar(length=300, default="")
    destination_lat = DoublePrecision(null=True, default=None)
    destination_lng = DoublePrecision(null=True, default=None)
    destination_address = Varchar(length=300, default="")
    notes = Text(default="")
    quoted_price = Integer(default=0)
    currency = Varchar(length=3, default="USD")
    driver = ForeignKey(
        references=Driver, on_delete=OnDelete.restrict, null=True, default=None, index=True
    )
    cancel_reason = Varchar(length=60, default="")
    version = Integer(default=1)
    created_by = Varchar(length=80, default="")  # "user:12", "partner:club-a", "system"
    # The partner's API client (its client_id) that created it: partners see only these
    # (tenant_0019).
    api_client: ForeignKey[Table] = ForeignKey(
        references=LazyTableReference("ApiClient", module_path="patone.core.tables.identity"),
        target_column="client_id",
        on_delete=OnDelete.no_action,
        on_update=OnUpdate.no_action,
        null=True,
        default=None,
    )
    created_at = Timestamptz(index=True)
    updated_at = Timestamptz()
    assigned_at = Timestamptz(null=True, default=None)
    en_route_at = Timestamptz(null=True, default=None)
    on_scene_at = Timestamptz(null=True, default=None)
    started_at = Timestamptz(null=True, default=None)
    completed_at = Timestamptz(null=True, default=None)
    cancelled_at = Timestamptz(null=True, default=None)
    # What dispatch needs (tenant_0015): offers made so far, whether the engine gave up and a
    # dispatcher must choose, when it went back to the queue, and the arrival time shown.
    offers_made = Integer(default=0)
    needs_dispatcher = Boolean(default=False)
    requeued_at = Timestamptz(null=True, default=None)
    eta_at = Timestamptz(null=True, default=None)
    eta_updated_at = Timestamptz(null=True, default=None)


@dataclass(frozen=True, slots=True)
class RequestRow(Record):
    table: ClassVar[type[Table]] = ServiceRequest
    id: int
    number: int
    customer: int
    vehicle: int | None
    service_type: int
    priority: str
    status: str
    source: str
    pickup_lat: float
    pickup_lng: float
    pickup_address: str
    destination_lat: float | None
    destination_lng: float | None
    destination_address: str
    notes: str
    quoted_price: int
    currency: str
    driver: int | None
    cancel_reason: str
    version: int
    created_by: str
    created_at: datetime
    updated_at: datetime
    assigned_at: datetime | None
    en_route_at: datetime | None
    on_scene_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    offers_made: int
    needs_dispatcher: bool
    requeued_at: datetime | None
    eta_at: datetime | None
    api_client: str | None


class RequestEvent(Table, tablename="request_events", db=engine):
    """One transition of a request: who, when, from, to, where, why."""

    request = ForeignKey(
        references=ServiceRequest, on_delete=OnDelete.cascade, null=False, index=True
    )
    from_status = Varchar(length=20, null=True, default=None)
    to_status = Varchar(length=20)
    actor_type = Varchar(length=20)
    actor_id = Varchar(length=64, default="")
    reason_code = Varchar(length=60, default="")
    note = Text(default="")
    lat = DoublePrecision(null=True, default=None)
    lng = DoublePrecision(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


@dataclass(frozen=True, slots=True)
class RequestEventRow(Record):
    table: ClassVar[type[Table]] = RequestEvent
    id: int
    request: int
    from_status: str | None
    to_status: str
    actor_type: str
    actor_id: str
    reason_code: str
    note: str
    lat: float | None
    lng: float | None
    created_at: datetime
