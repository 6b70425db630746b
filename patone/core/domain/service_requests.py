"""Service requests: create, change, assign, move through their life, list and page.

Every transition goes through `lifecycle.check_transition`, is stored as a request event (who,
when, from, to, where, why), logged in the activity log and emitted to the outbox, all in the
request's tenant transaction. Concurrent changes are caught by an optimistic version check:
the second of two dispatchers acting on one request gets a conflict error, not a lost update.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from pydantic import Field

from patone.core.common import topics
from patone.core.common.activity import emit, record
from patone.core.common.inputs import Input, Latitude, Longitude, Money, parse
from patone.core.common.paging import Key, Page, Window, fetch_page
from patone.core.common.permissions import Actor, PermissionDenied, require
from patone.core.common.rows import fetch_records, record_by_id
from patone.core.domain.company import get_settings
from patone.core.domain.customers import MotoristInput, find_or_add_motorist
from patone.core.domain.idempotency import idempotent
from patone.core.domain.lifecycle import ENTERED_AT, OPEN, REASONS, TRANSITIONS, check_transition
from patone.core.domain.service_types import distance_km, quote, service_type_by_code
from patone.core.runtime.clock import now
from patone.core.runtime.db import engine
from patone.core.runtime.errors import Conflict, NotFound, UserError
from patone.core.tables.customers import CustomerRow
from patone.core.tables.fleet import DriverRow
from patone.core.tables.requests import (
    Priority,
    RequestEventRow,
    RequestRow,
    RequestSource,
    RequestStatus,
)
from patone.plugins import config as plugins
from patone.plugins.types import Quote
from patone.tenants.isolation import TenantRef, get_current_tenant, tenant_transaction

PRIORITY_RANK = "array_position(ARRAY['emergency','high','normal','low']::varchar[], priority)"


class Location(Input):
    lat: Latitude
    lng: Longitude
    address: str = Field("", max_length=300)


class Point(Input):
    lat: Latitude
    lng: Longitude


class RequestInput(Input):
    customer_id: int | None = None
    vehicle_id: int | None = None
    # Instead of a customer: the motorist's details, matched to a customer or added.
    motorist: MotoristInput | None = None
    service_type: str = Field(min_length=1, max_length=40)
    priority: Priority = Priority.normal
    pickup: Location
    destination: Location | None = None
    notes: str = Field("", max_length=5000)
    quoted_price: Money | None = None
    source: RequestSource = RequestSource.admin


class RequestChanges(Input):
    priority: Priority | None = None
    pickup: Location | None = None
    destination: Location | None = None
    notes: str | None = Field(None, max_length=5000)
    quoted_price: Money | None = None


async def _request(request_id: int) -> RequestRow:
    return await record_by_id(RequestRow, request_id, what="request", field="request_id")


def can_see(actor: Actor, row: RequestRow) -> bool:
    """Whether the actor may see this request: its customer, the partner whose API client
    created it, staff who view requests, or the driver it is assigned to (callers still check
    the permission the action itself needs)."""
    if actor.kind == "customer":
        return actor.id == str(row.customer)
    if actor.kind == "partner":
        return row.api_client == actor.id
    if actor.can("requests.view"):
        return True
    # A driver sees the jobs assigned to them; a user of the driver role who is no driver
    # yet has none (an unassigned request's driver is NULL too, which must not match).
    return (
        actor.can("requests.view_assigned")
        and actor.driver_id is not None
        and row.driver == actor.driver_id
    )


async def get_request(tenant: TenantRef, actor: Actor, request_id: int) -> RequestRow:
    require(actor, "requests.view", "requests.view_assigned", "requests.view_own")
    async with tenant_transaction(tenant):
        row = await _request(request_id)
    if not can_see(actor, row):
        # Indistinguishable from a missing request: drivers learn nothing of others' jobs.
        raise NotFound("not_found", "no such request", "request_id")
    return row


async def create_request(
    tenant: TenantRef, actor: Actor, data: Any, *, idempotency_key: str | None = None
) -> RequestRow:
    """Create a pending request; the price is quoted from the price list unless given.

    The request names an existing customer (`customer_id`) or carries its motorist inline
    (`motorist`: a partner's way, since partners read no customers), found by phone and plate
    or added in the same transaction as the request."""
    require(actor, "requests.create")
    request = parse(RequestInput, data)
    if request.customer_id is None and request.motorist is None:
        raise UserError(
            "required", "name the customer, or give the motorist's details", "customer_id"
        )
    if request.customer_id is not None and request.motorist is not None:
        raise UserError(
            "invalid",
            "name the customer or give the motorist's details, not both",
            "customer_id",
        )
    if request.motorist is not None and request.vehicle_id is not None:
        raise UserError(
            "invalid", "give the motorist's vehicle with the motorist, not by id", "vehicle_id"
        )
    at = now()
    # Quoted before the transaction: plugins (adjust_quote) may take seconds, and a transaction
    # must never wait on them.
    price = request.quoted_price
    if price is None:
        price = await _price(tenant, request, at)

    async def create() -> tuple[int, RequestRow]:
        customer_id, vehicle_id = request.customer_id, request.vehicle_id
        if request.motorist is not None:
            customer_id, vehicle_id = await find_or_add_motorist(actor, request.motorist)
        else:
            if actor.kind == "partner":
                await _check_partner_knows(actor, customer_id)
            assert customer_id is not None  # no motorist: checked above
            customer = await record_by_id(
                CustomerRow, customer_id, what="customer", field="customer_id"
            )
            if customer.archived_at is not None:
                raise UserError("archived", "the customer is archived", "customer_id")
        if request.motorist is None and vehicle_id is not None:
            vehicle = await engine.fetch(
                "SELECT 1 FROM vehicles WHERE id = $1 AND customer = $2", vehicle_id, customer_id
            )
            if not vehicle:
                raise NotFound("not_found", "no such vehicle of this customer", "vehicle_id")
        service_type = await service_type_by_code(request.service_type)
        if not service_type.active:
            raise UserError("inactive", "this service is not offered now", "service_type")
        if service_type.needs_destination and request.destination is None:
            raise UserError("required", f"{service_type.name} needs a destination", "destination")
        settings = await get_settings(tenant)
        destination = request.destination
        rows = await engine.fetch(
            f"""
            INSERT INTO service_requests (number, customer, vehicle, service_type, priority,
                status, source, pickup_lat, pickup_lng, pickup_address, destination_lat,
                destination_lng, destination_address, notes, quoted_price, currency, driver,
                cancel_reason, version, created_by, created_at, updated_at, api_client)
            VALUES (nextval('service_request_number_seq'), $1, $2, $3, $4, 'pending', $5, $6,
                $7, $8, $9, $10, $11, $12, $13, $14, NULL, '', 1, $15, $16, $16, $17)
            RETURNING {RequestRow.columns()}
            """,
            customer_id,
            vehicle_id,
            service_type.id,
            request.priority.value,
            request.source.value,
            request.pickup.lat,
            request.pickup.lng,
            request.pickup.address,
            destination.lat if destination else None,
            destination.lng if destination else None,
            destination.address if destination else "",
            request.notes,
            price,
            str(settings.get("currency", "USD")),
            f"{actor.kind}:{actor.id}",
            at,
            actor.id if actor.kind == "partner" else None,
        )
        created = RequestRow.of(rows[0])
        await _event(created.id, None, RequestStatus.pending, actor, at=at)
        await record(
            actor, "service_request", created.id, "request.created", None, created.as_dict()
        )
        await emit(topics.REQUEST_CREATED, created.id, topics.RequestSummary(**_summary(created)))
        return created.id, created

    async def load(request_id: int) -> RequestRow:
        return await _request(request_id)

    given = request.model_dump(mode="json")
    return await idempotent(tenant, actor, "create_request", idempotency_key, given, create, load)


async def _check_partner_knows(actor: Actor, customer_id: int | None) -> None:
    """A partner names by id only a motorist it sent a job for before (it reads no customers,
    so any other id would let it look customers up by trying numbers): else not found."""
    known = await engine.fetch(
        "SELECT 1 FROM service_requests WHERE customer = $1 AND api_client = $2 LIMIT 1",
        customer_id,
        actor.id,
    )
    if not known:
        # The same answer as for a customer that does not exist: nothing to learn from it.
        raise NotFound("not_found", "no such customer", "customer_id")


async def _price(tenant: TenantRef, request: RequestInput, at: datetime) -> int:
    """The price list's quote for the request, after the tenant's `adjust_quote` plugins."""
    settings = await get_settings(tenant)
    async with tenant_transaction(tenant):
        service_type = await service_type_by_code(request.service_type)
    km = None
    if request.destination is not None:
        km = distance_km(
            request.pickup.lat,
            request.pickup.lng,
            request.destination.lat,
            request.destination.lng,
        )
    return await _adjusted(
        tenant,
        Quote(
            service_type=service_type.code,
            amount=quote(service_type, settings, at, km),
            currency=str(settings.get("currency", "USD")),
            at=at,
            time_zone=str(settings.get("time_zone", "UTC")),
            distance_km=km,
        ),
    )


async def _adjusted(tenant: TenantRef, offer: Quote) -> int:
    """The quote after the tenant's `adjust_quote` plugins (unchanged when none answers)."""
    try:
        plugins.get_runtime()
    except RuntimeError:
        return offer.amount  # no plugins set up (scripts, some tests)
    answer = await plugins.call_first(tenant, "adjust_quote", quote=offer)
    if answer is not None and isinstance(answer.value, Quote) and answer.value.amount >= 0:
        return answer.value.amount
    return offer.amount


def _summary(row: RequestRow) -> dict[str, Any]:
    """What every event about a request says of it."""
    return {
        key: getattr(row, key)
        for key in ("id", "number", "status", "priority", "driver", "version", "service_type")
    }


async def _event(
    request_id: int,
    from_status: str | None,
    to_status: str,
    actor: Actor,
    *,
    at: datetime,
    reason_code: str = "",
    note: str = "",
    lat: float | None = None,
    lng: float | None = None,
) -> None:
    await engine.execute(
        "INSERT INTO request_events (request, from_status, to_status, actor_type, actor_id, "
        "reason_code, note, lat, lng, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        request_id,
        from_status,
        str(to_status),
        actor.kind,
        actor.id,
        reason_code,
        note,
        lat,
        lng,
        at,
    )


async def _apply(
    current: RequestRow, expected_version: int | None, sets: dict[str, Any]
) -> RequestRow:
    """Write `sets` if the request is still at the version the caller saw; bump the version."""
    version = current.version if expected_version is None else expected_version
    assignments = ", ".join(f"{column} = ${i}" for i, column in enumerate(sets, start=3))
    rows = await engine.fetch(
        f"UPDATE service_requests SET {assignments}{', ' if sets else ''}"
        f"version = version + 1 WHERE id = $1 AND version = $2 RETURNING {RequestRow.columns()}",
        current.id,
        version,
        *sets.values(),
    )
    if not rows:
        raise Conflict(
            "stale",
            f"request {current.number} was changed by someone else since version {version}; "
            "reload it and try again",
            "expected_version",
        )
    return RequestRow.of(rows[0])


async def _driver_free_if_idle(driver_id: int | None, except_request: int) -> None:
    if driver_id is None:
        return
    await engine.execute(
        "UPDATE drivers SET status = 'available', updated_at = now() WHERE id = $1 "
        "AND status = 'busy' AND NOT EXISTS (SELECT 1 FROM service_requests WHERE driver = $1 "
        "AND id <> $2 AND status IN ('assigned', 'en_route', 'on_scene', 'in_progress'))",
        driver_id,
        except_request,
    )


async def update_request(
    tenant: TenantRef,
    actor: Actor,
    request_id: int,
    data: Any,
    *,
    expected_version: int | None = None,
) -> RequestRow:
    """Change an open request's details (priority, locations, notes, price)."""
    require(actor, "requests.update")
    changes = parse(RequestChanges, data)
    sets: dict[str, Any] = {}
    for name in ("priority", "notes", "quoted_price"):
        if name in changes.model_fields_set:
            value = getattr(changes, name)
            if value is None:
                raise UserError("required", f"{name} cannot be empty", name)
            sets[name] = value.value if isinstance(value, Priority) else value
    for name in ("pickup", "destination"):
        if name in changes.model_fields_set:
            place = getattr(changes, name)
            if place is None and name == "pickup":
                raise UserError("required", "pickup cannot be empty", "pickup")
            sets[f"{name}_lat"] = place.lat if place else None
            sets[f"{name}_lng"] = place.lng if place else None
            sets[f"{name}_address"] = place.address if place else ""
    async with tenant_transaction(tenant):
        current = await _request(request_id)
        if not can_see(actor, current):
            raise NotFound("not_found", "no such request", "request_id")
        if RequestStatus(current.status) not in OPEN:
            raise UserError("closed", f"request {current.number} is {current.status}", "status")
        if not sets:
            return current
        sets["updated_at"] = now()
        updated = await _apply(current, expected_version, sets)
        await record(
            actor,
            "service_request",
            request_id,
            "request.updated",
            current.as_dict(),
            updated.as_dict(),
        )
        await emit(topics.REQUEST_UPDATED, request_id, topics.RequestSummary(**_summary(updated)))
    return updated


async def assign_driver(
    tenant: TenantRef,
    actor: Actor,
    request_id: int,
    driver_id: int,
    *,
    expected_version: int | None = None,
) -> RequestRow:
    """A dispatcher's manual assignment: pending → assigned to this driver (an offer made to
    someone else for it is withdrawn)."""
    require(actor, "requests.assign")
    async with tenant_transaction(tenant):
        current = await _request(request_id)
        return await assign_in_transaction(current, driver_id, actor, expected_version)


async def assign_in_transaction(
    current: RequestRow, driver_id: int, actor: Actor, expected_version: int | None = None
) -> RequestRow:
    """Assign a pending request (already read in the caller's tenant transaction) to a driver:
    a dispatcher's choice, or a driver accepting an offer."""
    request_id = current.id
    check_transition(current.status, RequestStatus.assigned)
    driver = await record_by_id(DriverRow, driver_id, what="driver", field="driver_id")
    if driver.archived_at is not None:
        raise UserError("archived", "the driver is archived", "driver_id")
    if driver.status == "off_duty":
        raise UserError("off_duty", "the driver is off duty", "driver_id")
    at = now()
    updated = await _apply(
        current,
        expected_version,
        {"status": "assigned", "driver": driver_id, "assigned_at": at, "updated_at": at},
    )
    await engine.execute(
        "UPDATE drivers SET status = 'busy', updated_at = now() WHERE id = $1", driver_id
    )
    await withdraw_offers(request_id, "assigned")
    await _event(request_id, current.status, "assigned", actor, at=at)
    await record(
        actor,
        "service_request",
        request_id,
        "request.assigned",
        current.as_dict(),
        updated.as_dict(),
    )
    await emit(
        topics.REQUEST_ASSIGNED,
        request_id,
        topics.RequestAssigned(**_summary(updated), from_=current.status),
    )
    return updated


async def withdraw_offers(request_id: int, reason: str) -> None:
    """Close the request's live offer (if any, in the caller's transaction): once it is no
    longer waiting for a driver, or before a dispatcher offers it by hand. The dispatch
    engine's table, written here so every way out of `pending` closes it."""
    await engine.execute(
        "UPDATE offers SET status = 'withdrawn', responded_at = $2, reason = $3 "
        "WHERE request_id = $1 AND status = 'open'",
        request_id,
        now(),
        reason,
    )


def _check_driver_may(actor: Actor, current: RequestRow, wanted: str, reason_code: str) -> None:
    if actor.can("requests.transition") and (wanted != "cancelled" or actor.can("requests.cancel")):
        return
    if actor.kind == "partner" and wanted == "cancelled" and actor.can("requests.cancel"):
        return  # a partner cancels its own jobs (`can_see`); it moves them no other way
    if not actor.can("requests.transition_assigned") or current.driver != actor.driver_id:
        raise PermissionDenied("requests.transition")
    if wanted == "cancelled" and reason_code != "gone_on_arrival":
        raise PermissionDenied("requests.cancel")


async def transition(
    tenant: TenantRef,
    actor: Actor,
    request_id: int,
    status: str,
    *,
    expected_version: int | None = None,
    reason_code: str = "",
    note: str = "",
    lat: float | None = None,
    lng: float | None = None,
) -> RequestRow:
    """Move a request to `status`, if the state machine allows it, with who/where/why."""
    require(actor, "requests.transition", "requests.transition_assigned", "requests.cancel")
    if (lat is None) != (lng is None):
        raise UserError("required", "give both lat and lng, or neither", "lat")
    if lat is not None:
        parse(Point, {"lat": lat, "lng": lng})
    if len(note) > 2000:
        raise UserError("too_long", "note must be at most 2000 characters", "note")
    async with tenant_transaction(tenant):
        current = await _request(request_id)
        if not can_see(actor, current):
            raise NotFound("not_found", "no such request", "request_id")
        check_transition(current.status, status, reason_code)
        _check_driver_may(actor, current, status, reason_code)
        return await transition_in_transaction(
            current,
            status,
            actor,
            expected_version=expected_version,
            reason_code=reason_code,
            note=note,
            lat=lat,
            lng=lng,
        )


async def transition_in_transaction(
    current: RequestRow,
    status: str,
    actor: Actor,
    *,
    expected_version: int | None = None,
    reason_code: str = "",
    note: str = "",
    lat: float | None = None,
    lng: float | None = None,
) -> RequestRow:
    """Move a request (already read, and allowed to, in the caller's tenant transaction) to
    `status`: the state machine is checked again, the change recorded and emitted."""
    request_id = current.id
    check_transition(current.status, status, reason_code)
    at = now()
    sets: dict[str, Any] = {"status": status, "updated_at": at}
    if status in ENTERED_AT:
        sets[ENTERED_AT[RequestStatus(status)]] = at
    if status == "pending":  # back in the queue, ahead of requests that have not waited
        sets.update(driver=None, assigned_at=None, eta_at=None, requeued_at=at)
    if status == "cancelled":
        sets["cancel_reason"] = reason_code
    updated = await _apply(current, expected_version, sets)
    if current.status == "pending":
        await withdraw_offers(request_id, status)
    if status in ("pending", "completed", "cancelled"):
        await _driver_free_if_idle(current.driver, request_id)
    await _event(
        request_id,
        current.status,
        status,
        actor,
        at=at,
        reason_code=reason_code,
        note=note,
        lat=lat,
        lng=lng,
    )
    await record(
        actor,
        "service_request",
        request_id,
        f"request.{status}",
        current.as_dict(),
        updated.as_dict(),
    )
    await emit(
        topics.REQUEST_STATUS_CHANGED,
        request_id,
        topics.RequestStatusChanged(
            **_summary(updated), from_=current.status, reason_code=reason_code
        ),
    )
    return updated


async def request_events(tenant: TenantRef, actor: Actor, request_id: int) -> list[RequestEventRow]:
    """The request's history, oldest first."""
    await get_request(tenant, actor, request_id)
    async with tenant_transaction(tenant):
        return await fetch_records(
            RequestEventRow,
            f"SELECT {RequestEventRow.columns()} FROM request_events WHERE request = $1 "
            "ORDER BY id",
            request_id,
        )


# --- history --------------------------------------------------------------------------------------

HISTORY_CHUNK = 2_500
EVENTS_CHUNK = 10_000
# Written by `insert_history`, in this order.
_HISTORY_COLUMNS = (  # id, number, `PastRequest`'s first fields in their order, then derived
    "id", "number", "customer", "vehicle", "service_type", "priority", "source", "pickup_lat",
    "pickup_lng", "pickup_address", "destination_lat", "destination_lng", "destination_address",
    "notes", "quoted_price", "currency", "created_by",
    "status", "driver", "cancel_reason", "version", "created_at", "updated_at", "assigned_at",
    "en_route_at", "on_scene_at", "started_at", "completed_at", "cancelled_at", "requeued_at",
)  # fmt: skip
_EVENT_COLUMNS = (  # a request's id, then a `PastEvent`'s fields in their order
    "request", "from_status", "to_status", "actor_type", "actor_id", "created_at",
    "reason_code", "note", "lat", "lng",
)  # fmt: skip


class PastEvent(NamedTuple):
    """One step of a request's past life: from, to, who, when, where, why (a tuple: months of
    history make tens of thousands)."""

    from_status: str | None
    to_status: str
    actor_type: str
    actor_id: str
    at: datetime
    reason_code: str = ""
    note: str = ""
    lat: float | None = None
    lng: float | None = None


class PastRequest(NamedTuple):
    """A request that has already lived its life: what it was for, and every step of it,
    creation (None → pending) first. `driver` is the driver it was last assigned to (None if
    it ends pending or never had one)."""

    customer: int
    vehicle: int | None
    service_type: int
    priority: str
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
    created_by: str
    driver: int | None
    events: tuple[PastEvent, ...]


Progress = Callable[[str, int, int], None]


async def insert_history(
    requests: Sequence[PastRequest], *, progress: Progress | None = None
) -> list[int]:
    """Write requests that already happened (a demo company's months of history, a
    simulation's earlier days), with their events, in the caller's tenant transaction: ids and
    numbers from the tables' own sequences, then a binary COPY of each table, in chunks.

    Each life is checked against the state machine and its row is what `transition` would
    have left (status, version, every state's entry time, the cancel reason, the requeue).
    Nothing goes to the activity log or the outbox: nobody did this now. Returns the ids, in
    order. `progress(stage, done, total)` follows the stages "requests" and "events"."""
    get_current_tenant()  # refuse to write outside a tenant transaction
    for request in requests:
        _check_life(request)
    ids = await _reserve("service_requests_id_seq", len(requests))
    numbers = await _reserve("service_request_number_seq", len(requests))
    transaction = engine.current_transaction.get()
    assert transaction is not None  # get_current_tenant saw to it
    # COPY is not in the wrapper that serialises statements; nothing else runs meanwhile.
    raw = getattr(transaction.connection, "raw", transaction.connection)
    # Rows are made a chunk at a time as COPY takes them (months of history, kept small).
    rows = (
        _history_row(request, request_id, number)
        for request, request_id, number in zip(requests, ids, numbers, strict=True)
    )
    await _copy(raw, "service_requests", _HISTORY_COLUMNS, rows, len(ids), progress, "requests")
    events = (
        (request_id, *event)
        for request, request_id in zip(requests, ids, strict=True)
        for event in request.events
    )
    total = sum(len(request.events) for request in requests)
    await _copy(
        raw, "request_events", _EVENT_COLUMNS, events, total, progress, "events", EVENTS_CHUNK
    )
    return ids


_LEGAL = frozenset((str(a), str(b)) for a, nexts in TRANSITIONS.items() for b in nexts)
_REASONS = {str(state): codes for state, codes in REASONS.items()}


def _check_life(request: PastRequest) -> None:
    """Creation first, then legal steps, each from where the last one left it."""
    events = request.events
    if not events or events[0].from_status is not None or events[0].to_status != "pending":
        raise UserError("invalid", "a request's life starts with its creation, pending", "events")
    status = "pending"
    for event in events[1:]:
        if event.from_status != status:
            raise UserError("invalid", f"a step from {event.from_status} after {status}", "events")
        wanted = event.to_status
        codes = _REASONS.get(wanted)
        if (status, wanted) not in _LEGAL or (codes is not None and event.reason_code not in codes):
            check_transition(status, wanted, event.reason_code)  # raises the reason why
        status = wanted


def _history_row(request: PastRequest, request_id: int, number: int) -> tuple[Any, ...]:
    entered: dict[str, datetime] = {}
    requeued_at = None
    events = request.events
    for event in events[1:]:
        entered[event.to_status] = event.at  # the last entry wins, as each transition sets it
        if event.to_status == _PENDING:  # back in the queue: unassigned
            requeued_at = event.at
            entered.pop(_ASSIGNED, None)
    last = events[-1]
    status = last.to_status
    return (
        request_id, number, *request[:_DETAILS], status,
        None if status == _PENDING else request.driver,
        last.reason_code if status == _CANCELLED else "",
        len(events),  # 1 at creation, +1 per transition
        events[0].at, last.at,
        *[entered.get(state) for state in _ENTERED_ORDER],
        requeued_at,
    )  # fmt: skip


_PENDING, _ASSIGNED, _CANCELLED = "pending", "assigned", "cancelled"
# A history row's columns after its id and number: `PastRequest`'s first fields, in order.
_DETAILS = 15
_ENTERED_ORDER = ("assigned", "en_route", "on_scene", "in_progress", "completed", "cancelled")


async def _reserve(sequence: str, count: int) -> list[int]:
    """Take `count` values from a sequence, ascending."""
    rows = await engine.fetch(
        "SELECT nextval($1::regclass) AS id FROM generate_series(1, $2)", sequence, count
    )
    return sorted(int(row["id"]) for row in rows)


async def _copy(
    raw: Any,
    table: str,
    columns: Sequence[str],
    records: Iterable[tuple[Any, ...]],
    total: int,
    progress: Progress | None,
    stage: str,
    chunk: int = HISTORY_CHUNK,
) -> None:
    """Binary COPY in chunks, reporting progress after each."""
    if progress:
        progress(stage, 0, total)
    done, remaining = 0, iter(records)
    while batch := list(itertools.islice(remaining, chunk)):
        await raw.copy_records_to_table(table, records=batch, columns=list(columns))
        done += len(batch)
        if progress:
            progress(stage, done, total)


# --- listing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestFilter:
    statuses: tuple[str, ...] = ()
    priorities: tuple[str, ...] = ()
    driver_id: int | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    text: str = ""
    open_only: bool = False


ORDERS = {
    # name: (sort keys, all descending?)
    "newest": ((Key("created_at", "datetime"), Key("id")), True),
    "oldest": ((Key("created_at", "datetime"), Key("id")), False),
    "priority": ((Key(PRIORITY_RANK), Key("created_at", "datetime"), Key("id")), False),
}


async def list_requests(
    tenant: TenantRef,
    actor: Actor,
    *,
    filter: RequestFilter | None = None,
    order: str = "newest",
    first: int | None = 50,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Page[RequestRow]:
    """A page of requests (keyset pagination: stable while requests are being added); `last`
    pages backwards from the end or from `before`."""
    require(actor, "requests.view", "requests.view_assigned", "requests.view_own")
    if order not in ORDERS:
        raise UserError("invalid_choice", f"order must be one of {', '.join(ORDERS)}", "order")
    f = filter or RequestFilter()
    where: list[str] = []
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if actor.kind == "partner":
        where.append(f"api_client = {arg(actor.id)}")
    elif not actor.can("requests.view"):
        where.append(f"driver = {arg(actor.driver_id)}")
    if f.statuses:
        where.append(f"status = ANY({arg(list(f.statuses))}::varchar[])")
    if f.open_only:
        where.append("status NOT IN ('completed', 'cancelled')")
    if f.priorities:
        where.append(f"priority = ANY({arg(list(f.priorities))}::varchar[])")
    if f.driver_id is not None:
        where.append(f"driver = {arg(f.driver_id)}")
    if f.created_from is not None:
        where.append(f"created_at >= {arg(f.created_from)}")
    if f.created_to is not None:
        where.append(f"created_at < {arg(f.created_to)}")
    if f.text.strip():
        text = f.text.strip()
        digits = "".join(c for c in text if c.isdigit())
        pattern = "%" + "".join(c for c in text if c.isalnum() or c == " ") + "%"
        clauses = [
            f"pickup_address ILIKE {arg(pattern)}",
            f"customer IN (SELECT id FROM customers WHERE name ILIKE {arg(pattern)})",
            "vehicle IN (SELECT id FROM vehicles WHERE "
            "regexp_replace(upper(plate), '[^A-Z0-9]', '', 'g') LIKE "
            f"{arg('%' + ''.join(c for c in text if c.isalnum()).upper() + '%')})",
        ]
        if digits:
            clauses.append(f"number::text = {arg(digits)}")
        where.append("(" + " OR ".join(clauses) + ")")
    keys, descending = ORDERS[order]
    page = await fetch_page(
        tenant,
        columns=RequestRow.columns(),
        source="service_requests",
        where=where,
        args=args,
        keys=keys,
        descending=descending,
        window=Window(first=first, after=after, last=last, before=before),
    )
    return page.map(RequestRow.of)
