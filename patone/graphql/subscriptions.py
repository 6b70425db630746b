"""Live updates over graphql-transport-ws, fed by the outbox relay through Redis pub/sub.

Any app process can serve a subscription: the relay (in whichever process committed or noticed
the change) publishes the event to `t:<slug>:events`, and every process subscribed to that
channel forwards it. Each update re-reads the request as the subscriber, so a driver only ever
sees their own jobs.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Container
from enum import Enum
from typing import Any

import strawberry
from strawberry.types import Info

from patone.core.common import topics
from patone.core.domain import service_requests
from patone.core.runtime.errors import NotFound
from patone.core.runtime.redis import subscriber
from patone.core.work.relay import events_channel
from patone.graphql.context import Context
from patone.graphql.parts import part
from patone.graphql.types import ServiceRequest


@strawberry.enum
class RequestChange(Enum):
    CREATED = topics.REQUEST_CREATED.name
    UPDATED = topics.REQUEST_UPDATED.name
    ASSIGNED = topics.REQUEST_ASSIGNED.name
    STATUS_CHANGED = topics.REQUEST_STATUS_CHANGED.name
    ETA_CHANGED = topics.REQUEST_ETA_CHANGED.name
    NEEDS_DISPATCHER = topics.REQUEST_NEEDS_DISPATCHER.name


@strawberry.type
class ServiceRequestUpdate:
    event_id: int
    change: RequestChange
    service_request: ServiceRequest


@part("Subscription", 10)
@strawberry.type
class Subscription:
    @strawberry.subscription(description="Requests created or changed in this company, live.")
    async def service_request_updates(
        self, info: Info[Context, None]
    ) -> AsyncGenerator[ServiceRequestUpdate, None]:
        ctx = info.context
        topics = {change.value: change for change in RequestChange}
        async for event in tenant_events(ctx.tenant.slug, topics):
            try:
                row = await service_requests.get_request(
                    ctx.tenant, ctx.actor, int(event["entity_id"])
                )
            except NotFound:
                continue  # not visible to this subscriber
            yield ServiceRequestUpdate(
                event_id=event["id"],
                change=topics[event["topic"]],
                service_request=ServiceRequest.from_row(row),
            )


async def tenant_events(slug: str, topics: Container[str]) -> AsyncGenerator[dict[str, Any], None]:
    """The company's committed events of these topics as the relay publishes them, each once
    (a re-published duplicate is skipped)."""
    pubsub = subscriber()
    await pubsub.subscribe(events_channel(slug))
    last_id = 0
    try:
        async for message in pubsub.listen():
            if message.get("type") != "message":
                continue
            event = json.loads(message["data"])
            if event["topic"] not in topics or event["id"] <= last_id:
                continue
            last_id = event["id"]
            yield event
    finally:
        await pubsub.aclose()
