"""Watching the truck come: a request's status, driver, ETA and the driver's live position.

`track_request` is what the customer's tracking page (and a dispatcher's view of one job)
listens to. It yields the request as it is at once, then again on every change of the request
(status, driver, ETA) and on every ping of its driver, and ends with the request (completed or
cancelled). Pings reach it the way they reach the dispatch map: the company's positions channel,
published as they are accepted, so a ping is on the page within a second.

A driver's whereabouts are shown only while they are coming to the customer or are with them
(`en_route`, `on_scene`): not before they set off (an assigned driver may be finishing another
job), nor after the job. Who may watch: the request's customer (a customer token), staff who may
view requests, and the driver assigned to it; anyone else is told the request does not exist.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from patone.core.common import topics
from patone.core.common.permissions import Actor
from patone.core.dispatch.positions import DriverPosition, driver_positions, positions_channel
from patone.core.domain.service_requests import can_see
from patone.core.runtime.db import engine
from patone.core.runtime.errors import NotFound
from patone.core.runtime.redis import subscriber
from patone.core.tables.requests import RequestRow
from patone.core.work.relay import events_channel
from patone.tenants.isolation import TenantRef, tenant_transaction

SHOWN = frozenset({"en_route", "on_scene"})  # the driver's position is shown in these
ENDED = frozenset({"completed", "cancelled"})
# The request's own events that change what the page shows.
TOPICS = topics.names(
    topics.REQUEST_ASSIGNED, topics.REQUEST_STATUS_CHANGED, topics.REQUEST_ETA_CHANGED
)


@dataclass(frozen=True)
class Tracking:
    request_id: int
    number: int
    status: str
    eta_at: datetime | None
    driver_name: str | None
    driver_truck: str | None
    position: DriverPosition | None  # only while the driver is coming or on scene
    driver_id: int | None = None

    @property
    def ended(self) -> bool:
        return self.status in ENDED


async def _read(tenant: TenantRef, actor: Actor, request_id: int) -> Tracking:
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            f"SELECT {RequestRow.columns('r')}, d.name, d.truck "
            "FROM service_requests r LEFT JOIN drivers d ON d.id = r.driver WHERE r.id = $1",
            request_id,
        )
    if not rows or not can_see(actor, RequestRow.of(rows[0])):
        raise NotFound("not_found", "no such request", "request_id")
    row = rows[0]
    position = None
    if row["driver"] is not None and row["status"] in SHOWN:
        found = await driver_positions(tenant, [row["driver"]])
        position = found[0] if found else None
    return Tracking(
        request_id=row["id"],
        number=row["number"],
        status=row["status"],
        eta_at=row["eta_at"],
        driver_name=row["name"],
        driver_truck=row["truck"],
        position=position,
        driver_id=row["driver"],
    )


async def track_request(
    tenant: TenantRef, actor: Actor, request_id: int
) -> AsyncGenerator[Tracking, None]:
    """The request now, then at each change and each of its driver's pings, until it ends
    (`NotFound` if the actor may not watch it). Subscribes before the first read, so nothing
    between them is missed; an event whose change that read already showed (the relay
    publishes a moment after the commit) is not shown twice."""
    pubsub = subscriber()
    events, pings = events_channel(tenant.slug), positions_channel(tenant.slug)
    await pubsub.subscribe(events, pings)
    try:
        shown = await _read(tenant, actor, request_id)
        yield shown
        if shown.ended:
            return
        async for message in pubsub.listen():
            if message.get("type") != "message":
                continue
            channel = message["channel"]
            channel = channel.decode() if isinstance(channel, bytes) else channel
            data = json.loads(message["data"])
            if channel == events:
                if data.get("entity_id") != str(request_id) or data.get("topic") not in TOPICS:
                    continue
                read = await _read(tenant, actor, request_id)
                if read == shown:
                    continue  # an event the first read already saw (published after it)
                shown = read
            elif shown.status in SHOWN and shown.driver_id is not None:
                newest = _newest_of(data["positions"], shown.driver_id)
                if newest is None:
                    continue
                shown = replace(shown, position=newest)
            else:
                continue
            yield shown
            if shown.ended:
                return
    finally:
        await pubsub.aclose()


def _newest_of(positions: list[dict[str, Any]], driver_id: int) -> DriverPosition | None:
    """The driver's position in one published batch of pings, if it holds one."""
    mine = [p for p in positions if p["driver_id"] == driver_id]
    return DriverPosition.from_json(mine[-1]) if mine else None
