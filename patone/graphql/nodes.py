"""`node(id:)`: one registry from a Node type's name to the way its own fields read it.

Each entry reads through the same service (or DataLoader) and so the same permission as the
type's own fields: a viewer refused `drivers` is refused a Driver's id with the same error, and
an id that names no row of this company (or one the viewer may not see) resolves to null. A test
walks every type implementing Node in the schema and fails when one is missing here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from patone.core.common import activity
from patone.core.domain import customers, drivers, service_requests, webhooks
from patone.core.identity import api_clients, users
from patone.core.runtime.errors import NotFound
from patone.graphql.api_clients import ApiClient
from patone.graphql.company import ActivityEntry
from patone.graphql.context import Context
from patone.graphql.types import (
    Customer,
    Driver,
    Node,
    ServiceRequest,
    ServiceType,
    User,
    Vehicle,
)
from patone.graphql.webhooks import WebhookDelivery, WebhookEndpoint

Row = dict[str, Any]
T = TypeVar("T")
Load = Callable[[Context, int], Awaitable[Node]]


async def _service_type(ctx: Context, pk: int) -> Node:
    # The price list is open to every member of the company (`serviceTypes` checks nothing).
    row = await ctx.loaders.service_type.load(pk)
    if row is None:
        raise NotFound("not_found", "no such service type", "id")
    return ServiceType.from_row(row)


def _through(read: Callable[[Any, Any, int], Awaitable[T]], build: Callable[[T], Node]) -> Load:
    """A loader reading one row with a service function (which checks the permission)."""

    async def load(ctx: Context, pk: int) -> Node:
        return build(await read(ctx.tenant, ctx.actor, pk))

    return load


NODE_TYPES: dict[str, Load] = {
    "ActivityEntry": _through(activity.get_activity, ActivityEntry.from_row),
    "ApiClient": _through(api_clients.get_client, ApiClient.from_row),
    "Customer": _through(customers.get_customer, Customer.from_row),
    "Driver": _through(drivers.get_driver, Driver.from_row),
    "ServiceRequest": _through(service_requests.get_request, ServiceRequest.from_row),
    "ServiceType": _service_type,
    "User": _through(users.get_user, User.from_row),
    "Vehicle": _through(customers.get_vehicle, Vehicle.from_row),
    "WebhookDelivery": _through(webhooks.get_delivery, WebhookDelivery.from_row),
    "WebhookEndpoint": _through(webhooks.get_endpoint, WebhookEndpoint.from_row),
}


async def resolve_node(ctx: Context, type_name: str, pk: int) -> Node | None:
    """The object a global id names, or None when this company has no such object the viewer
    may see; a missing permission raises as the type's own fields do."""
    load = NODE_TYPES.get(type_name)
    if load is None:
        return None
    try:
        return await load(ctx, pk)
    except NotFound:
        return None
