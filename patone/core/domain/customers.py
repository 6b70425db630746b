"""Customers, their vehicles and memberships: create, change, archive, search."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from pydantic import Field

from patone.core.common import topics
from patone.core.common.activity import emit, record
from patone.core.common.inputs import Email, Input, Name, Phone, Plate, parse
from patone.core.common.paging import Key, Page, Window, fetch_page
from patone.core.common.permissions import Actor, require
from patone.core.common.rows import fetch_records, insert_row, record_by_id, update_row
from patone.core.domain.idempotency import idempotent
from patone.core.runtime.clock import now
from patone.core.runtime.db import engine
from patone.core.tables.customers import CustomerRow, MembershipRow, VehicleRow
from patone.tenants.isolation import TenantRef, tenant_transaction


class VehicleInput(Input):
    make: str = Field("", max_length=60)
    model: str = Field("", max_length=60)
    year: int | None = Field(None, ge=1900, le=2100)
    colour: str = Field("", max_length=40)
    plate: Plate = ""
    vin: str = Field("", pattern=r"^([A-HJ-NPR-Z0-9]{17})?$")


class CustomerInput(Input):
    name: Name
    phone: Phone | None = None
    email: Email | None = None
    notes: str = Field("", max_length=5000)
    vehicles: list[VehicleInput] = Field(default_factory=list, max_length=20)


class MotoristVehicle(VehicleInput):
    # Required: the plate is how the motorist's next job finds this vehicle again.
    plate: Annotated[Plate, Field(min_length=1)]


class MotoristInput(Input):
    """A motorist as a partner sends them with a job: matched to a customer by phone."""

    name: Name
    phone: Phone
    vehicle: MotoristVehicle | None = None


class CustomerChanges(Input):
    name: Name | None = None
    phone: Phone | None = None
    email: Email | None = None
    notes: str | None = Field(None, max_length=5000)


class MembershipInput(Input):
    provider: str = Field(min_length=1, max_length=100)
    number: str = Field(min_length=1, max_length=100)
    valid_until: date | None = None


async def _customer(customer_id: int) -> CustomerRow:
    return await record_by_id(CustomerRow, customer_id, what="customer", field="customer_id")


async def get_customer(tenant: TenantRef, actor: Actor, customer_id: int) -> CustomerRow:
    require(actor, "customers.view")
    async with tenant_transaction(tenant):
        return await _customer(customer_id)


async def _insert_vehicle(customer_id: int, vehicle: VehicleInput) -> VehicleRow:
    vehicle_id = await insert_row(
        "vehicles", {"customer": customer_id, "created_at": now(), **vehicle.model_dump()}
    )
    return await _vehicle(vehicle_id)


async def create_customer(
    tenant: TenantRef, actor: Actor, data: Any, *, idempotency_key: str | None = None
) -> CustomerRow:
    """Create a customer (with vehicles); a retried idempotency key returns the first one."""
    require(actor, "customers.manage")
    customer = parse(CustomerInput, data)

    async def create() -> tuple[int, CustomerRow]:
        at = now()
        customer_id = await insert_row(
            "customers",
            {
                **customer.model_dump(exclude={"vehicles"}),
                "created_at": at,
                "updated_at": at,
            },
        )
        for vehicle in customer.vehicles:
            added = await _insert_vehicle(customer_id, vehicle)
            await record(actor, "vehicle", added.id, "vehicle.created", None, added.as_dict())
        created = await _customer(customer_id)
        await record(actor, "customer", customer_id, "customer.created", None, created.as_dict())
        await emit(topics.CUSTOMER_CREATED, customer_id, topics.CustomerRef(customer_id))
        return customer_id, created

    async def load(customer_id: int) -> CustomerRow:
        return await _customer(customer_id)

    given = customer.model_dump(mode="json")
    return await idempotent(tenant, actor, "create_customer", idempotency_key, given, create, load)


async def find_or_add_motorist(actor: Actor, motorist: MotoristInput) -> tuple[int, int | None]:
    """The customer (and vehicle) a job's inline motorist stands for, in the caller's tenant
    transaction: the company's customer with this (normalised) phone and their vehicle with
    this plate, each created when there is none. Nothing of an existing customer is changed:
    whoever sends a job cannot rename someone else's customer."""
    # Two jobs for one new motorist at once must not make two customers of them.
    await engine.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('motorist:' || $1, 0))", motorist.phone
    )
    found = await engine.fetch(
        "SELECT id FROM customers WHERE phone = $1 AND archived_at IS NULL ORDER BY id LIMIT 1",
        motorist.phone,
    )
    if found:
        customer_id = int(found[0]["id"])
    else:
        at = now()
        customer_id = await insert_row(
            "customers",
            {"name": motorist.name, "phone": motorist.phone, "created_at": at, "updated_at": at},
        )
        created = await _customer(customer_id)
        await record(actor, "customer", customer_id, "customer.created", None, created.as_dict())
        await emit(topics.CUSTOMER_CREATED, customer_id, topics.CustomerRef(customer_id))
    if motorist.vehicle is None:
        return customer_id, None
    vehicles = await engine.fetch(
        "SELECT id FROM vehicles WHERE customer = $1 AND archived_at IS NULL "
        "AND regexp_replace(upper(plate), '[^A-Z0-9]', '', 'g') = "
        "regexp_replace(upper($2), '[^A-Z0-9]', '', 'g') ORDER BY id LIMIT 1",
        customer_id,
        motorist.vehicle.plate,
    )
    if vehicles:
        return customer_id, int(vehicles[0]["id"])
    added = await _insert_vehicle(customer_id, motorist.vehicle)
    await record(actor, "vehicle", added.id, "vehicle.created", None, added.as_dict())
    return customer_id, added.id


def seen_by(actor: Actor, row: CustomerRow) -> CustomerRow:
    """A request's customer as this actor may see them: a partner, who reads customers only
    through its own requests, sees the motorist's name and phone and nothing of the company's
    own notes or contact details."""
    if actor.kind != "partner" or actor.can("customers.view"):
        return row
    return row.replace(email=None, notes="")


async def _audited_customer(
    actor: Actor, customer_id: int, changes: dict[str, Any], action: str
) -> CustomerRow:
    """Change a customer and log it with the row before and after."""
    before = await _customer(customer_id)
    await update_row("customers", customer_id, changes)
    after = await _customer(customer_id)
    await record(actor, "customer", customer_id, action, before.as_dict(), after.as_dict())
    return after


async def _audited_vehicle(
    actor: Actor, vehicle_id: int, changes: dict[str, Any], action: str
) -> VehicleRow:
    """Change a vehicle and log it with the row before and after."""
    before = await _vehicle(vehicle_id)
    await update_row("vehicles", vehicle_id, changes)
    after = await _vehicle(vehicle_id)
    await record(actor, "vehicle", vehicle_id, action, before.as_dict(), after.as_dict())
    return after


async def update_customer(
    tenant: TenantRef, actor: Actor, customer_id: int, data: Any
) -> CustomerRow:
    require(actor, "customers.manage")
    changes = parse(CustomerChanges, data).model_dump(exclude_unset=True)
    async with tenant_transaction(tenant):
        after = await _audited_customer(
            actor, customer_id, {**changes, "updated_at": now()}, "customer.updated"
        )
        await emit(topics.CUSTOMER_UPDATED, customer_id, topics.CustomerRef(customer_id))
    return after


async def archive_customer(tenant: TenantRef, actor: Actor, customer_id: int) -> CustomerRow:
    """Hide a customer from lists and searches; their history stays."""
    require(actor, "customers.manage")
    async with tenant_transaction(tenant):
        return await _audited_customer(
            actor, customer_id, {"archived_at": now()}, "customer.archived"
        )


async def add_vehicle(tenant: TenantRef, actor: Actor, customer_id: int, data: Any) -> VehicleRow:
    require(actor, "customers.manage")
    vehicle = parse(VehicleInput, data)
    async with tenant_transaction(tenant):
        await _customer(customer_id)
        created = await _insert_vehicle(customer_id, vehicle)
        await record(actor, "vehicle", created.id, "vehicle.created", None, created.as_dict())
    return created


async def list_vehicles(tenant: TenantRef, actor: Actor, customer_id: int) -> list[VehicleRow]:
    require(actor, "customers.view")
    async with tenant_transaction(tenant):
        return await fetch_records(
            VehicleRow,
            f"SELECT {VehicleRow.columns()} FROM vehicles WHERE customer = $1 "
            "AND archived_at IS NULL ORDER BY id",
            customer_id,
        )


async def add_membership(
    tenant: TenantRef, actor: Actor, customer_id: int, data: Any
) -> MembershipRow:
    require(actor, "customers.manage")
    membership = parse(MembershipInput, data)
    async with tenant_transaction(tenant):
        await _customer(customer_id)
        membership_id = await insert_row(
            "memberships", {"customer": customer_id, "created_at": now(), **membership.model_dump()}
        )
        created = await record_by_id(
            MembershipRow, membership_id, what="membership", field="membership_id"
        )
        await record(actor, "membership", created.id, "membership.created", None, created.as_dict())
    return created


# Name or email words by prefix, or part of a phone number (3 digits or more) or of a plate.
_SEARCH = """(
    ($1::text IS NOT NULL AND c.search @@ to_tsquery('simple', $1))
    OR (length($2) >= 3 AND c.phone LIKE '%' || $2 || '%')
    OR EXISTS (SELECT 1 FROM vehicles v WHERE v.customer = c.id AND length($3) >= 2
               AND regexp_replace(upper(v.plate), '[^A-Z0-9]', '', 'g') LIKE '%' || $3 || '%')
)"""


def _search_args(text: str) -> list[Any]:
    """The values of `_SEARCH`'s $1, $2 and $3 for a search text."""
    words = [w for w in "".join(c if c.isalnum() else " " for c in text).split() if w]
    prefix_query = " & ".join(f"{w}:*" for w in words) if words else None
    digits = "".join(c for c in text if c.isdigit())
    plate = "".join(c for c in text if c.isalnum()).upper()
    return [prefix_query, digits, plate]


async def list_customers(
    tenant: TenantRef,
    actor: Actor,
    *,
    search: str | None = None,
    first: int | None = 50,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Page[CustomerRow]:
    """A page of customers (archived left out): by id, or by name when searching (the words
    of a name or email, or part of a phone number or plate)."""
    require(actor, "customers.view")
    where = ["c.archived_at IS NULL"]
    args: list[Any] = []
    keys: tuple[Key, ...] = (Key("c.id"),)
    text = (search or "").strip()
    if text:
        where.append(_SEARCH)
        args.extend(_search_args(text))
        keys = (Key("c.name", "text"), Key("c.id"))
    page = await fetch_page(
        tenant,
        columns=CustomerRow.columns("c"),
        source="customers c",
        where=where,
        args=args,
        keys=keys,
        descending=False,
        window=Window(first=first, after=after, last=last, before=before),
    )
    return page.map(CustomerRow.of)


class VehicleChanges(Input):
    make: str | None = Field(None, max_length=60)
    model: str | None = Field(None, max_length=60)
    year: int | None = Field(None, ge=1900, le=2100)
    colour: str | None = Field(None, max_length=40)
    plate: Plate | None = None
    vin: str | None = Field(None, pattern=r"^([A-HJ-NPR-Z0-9]{17})?$")


async def _vehicle(vehicle_id: int) -> VehicleRow:
    return await record_by_id(VehicleRow, vehicle_id, what="vehicle", field="vehicle_id")


async def get_vehicle(tenant: TenantRef, actor: Actor, vehicle_id: int) -> VehicleRow:
    """One vehicle, for those who may see customers (and so their vehicles)."""
    require(actor, "customers.view")
    async with tenant_transaction(tenant):
        return await _vehicle(vehicle_id)


async def update_vehicle(tenant: TenantRef, actor: Actor, vehicle_id: int, data: Any) -> VehicleRow:
    require(actor, "customers.manage")
    changes = parse(VehicleChanges, data).model_dump(exclude_unset=True)
    async with tenant_transaction(tenant):
        return await _audited_vehicle(actor, vehicle_id, changes, "vehicle.updated")


async def archive_vehicle(tenant: TenantRef, actor: Actor, vehicle_id: int) -> VehicleRow:
    """Hide a vehicle the customer no longer has; requests that used it keep it."""
    require(actor, "customers.manage")
    async with tenant_transaction(tenant):
        return await _audited_vehicle(actor, vehicle_id, {"archived_at": now()}, "vehicle.archived")


async def list_memberships(
    tenant: TenantRef, actor: Actor, customer_id: int
) -> list[MembershipRow]:
    require(actor, "customers.view")
    async with tenant_transaction(tenant):
        return await fetch_records(
            MembershipRow,
            f"SELECT {MembershipRow.columns()} FROM memberships WHERE customer = $1 ORDER BY id",
            customer_id,
        )
