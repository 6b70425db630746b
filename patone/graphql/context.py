"""Per-request context: the tenant, the acting user, and the request's DataLoaders.

graphql-core resolves sibling fields concurrently, so each loader batch opens its own short
tenant transaction on a pooled connection (DESIGN.md, "Tenancy" hazards) instead of sharing one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from redis.exceptions import RedisError
from strawberry.dataloader import DataLoader

from patone.core.common.permissions import Actor
from patone.core.dispatch import positions
from patone.core.dispatch.positions import DriverPosition
from patone.core.identity.tokens import Claims
from patone.core.runtime.db import engine
from patone.core.tables.customers import CustomerRow, VehicleRow
from patone.core.tables.fleet import DriverRow
from patone.core.tables.records import Record
from patone.core.tables.requests import RequestEventRow, RequestRow, ServiceTypeRow
from patone.tenants.isolation import TenantRef, tenant_transaction

log = logging.getLogger(__name__)

Row = dict[str, Any]
R = TypeVar("R", bound=Record)


def _records(tenant: TenantRef, kind: type[R]) -> DataLoader[int, R | None]:
    """Rows of `kind` by id, as the owning service reads them."""
    table = kind.table._meta.tablename

    async def load(ids: Sequence[int]) -> list[R | None]:
        async with tenant_transaction(tenant):
            rows = await engine.fetch(
                f"SELECT {kind.columns()} FROM {table} WHERE id = ANY($1::bigint[])", list(ids)
            )
        found = {row["id"]: kind.of(row) for row in rows}
        return [found.get(i) for i in ids]

    return DataLoader(load_fn=load)


def _events(tenant: TenantRef) -> DataLoader[int, list[RequestEventRow]]:
    async def load(request_ids: Sequence[int]) -> list[list[RequestEventRow]]:
        async with tenant_transaction(tenant):
            rows = await engine.fetch(
                f"SELECT {RequestEventRow.columns()} FROM request_events "
                "WHERE request = ANY($1::bigint[]) ORDER BY id",
                list(request_ids),
            )
        grouped: dict[int, list[RequestEventRow]] = {i: [] for i in request_ids}
        for row in rows:
            grouped[row["request"]].append(RequestEventRow.of(row))
        return [grouped[i] for i in request_ids]

    return DataLoader(load_fn=load)


def _positions(tenant: TenantRef) -> DataLoader[int, DriverPosition | None]:
    """Drivers' latest pings from the live positions store (one Redis round trip a batch);
    none while Redis cannot answer (the drivers table's position, seconds older, stands in)."""

    async def load(ids: Sequence[int]) -> list[DriverPosition | None]:
        try:
            live = await positions.driver_positions(tenant, ids)
        except RedisError:
            log.warning("live positions unavailable", exc_info=True)
            return [None] * len(ids)
        found = {p.driver_id: p for p in live}
        return [found.get(i) for i in ids]

    return DataLoader(load_fn=load)


@dataclass
class Loaders:
    customer: DataLoader[int, CustomerRow | None]
    vehicle: DataLoader[int, VehicleRow | None]
    driver: DataLoader[int, DriverRow | None]
    service_type: DataLoader[int, ServiceTypeRow | None]
    request: DataLoader[int, RequestRow | None]
    events: DataLoader[int, list[RequestEventRow]]
    position: DataLoader[int, DriverPosition | None]

    @classmethod
    def for_tenant(cls, tenant: TenantRef) -> Loaders:
        return cls(
            customer=_records(tenant, CustomerRow),
            vehicle=_records(tenant, VehicleRow),
            driver=_records(tenant, DriverRow),
            service_type=_records(tenant, ServiceTypeRow),
            request=_records(tenant, RequestRow),
            events=_events(tenant),
            position=_positions(tenant),
        )

    def prime(self, loader: str, rows: Iterable[Row | Record]) -> None:
        target: DataLoader[int, Any] = getattr(self, loader)
        for row in rows:
            target.prime(row["id"] if isinstance(row, dict) else row.as_dict()["id"], row)


@dataclass
class Context:
    tenant: TenantRef
    actor: Actor
    loaders: Loaders = field(init=False)
    request: Any = None
    response: Any = None
    connection_params: dict[str, Any] | None = None  # graphql-transport-ws connection_init
    claims: Claims | None = None  # a socket's token, once connection_init authenticated it

    def __post_init__(self) -> None:
        self.loaders = Loaders.for_tenant(self.tenant)
