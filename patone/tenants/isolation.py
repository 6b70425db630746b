"""`tenant_transaction`: the only way tenant data is read or written.

Every unit of tenant work runs inside `async with tenant_transaction(tenant):`, which opens a
transaction on the tenant's shard and first runs `SET LOCAL search_path` and `SET LOCAL ROLE`.
The role owns only its own schema, so a forgotten filter or a wrong id can at worst fail with
*permission denied*; it can never read another company's rows. Piccolo keeps the transaction in
a ContextVar, so ORM queries inside the block use it.

graphql-core resolves sibling fields concurrently, and tasks copy the ContextVar; a connection
can run one statement at a time, so statements on a shared tenant transaction are serialised by
a lock instead of failing with "another operation is in progress". Resolvers that want real
parallelism open their own short tenant transaction each.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol
from uuid import UUID

import asyncpg
from piccolo.engine.postgres import PostgresTransaction

from patone.core.runtime.db import current_shard, engine
from patone.tenants.naming import quote_ident


class TenantRef(Protocol):
    """What isolation needs to know about a tenant."""

    @property
    def id(self) -> UUID: ...  # immutable: a later tenant with the same slug has another
    @property
    def slug(self) -> str: ...
    @property
    def schema_name(self) -> str: ...
    @property
    def role_name(self) -> str: ...
    @property
    def shard(self) -> str: ...


class TenantContextError(RuntimeError):
    """Tenant work was attempted in a context that would mix tenants."""


current_tenant: contextvars.ContextVar[TenantRef | None] = contextvars.ContextVar(
    "patone_current_tenant", default=None
)


def get_current_tenant() -> TenantRef:
    """The tenant of the enclosing `tenant_transaction`; raises outside one."""
    tenant = current_tenant.get()
    if tenant is None:
        raise TenantContextError("no tenant transaction is active")
    return tenant


class SerializedConnection:
    """An asyncpg connection whose statements run one at a time, whoever awaits them."""

    def __init__(self, raw: asyncpg.Connection) -> None:
        self.raw = raw
        self._lock = asyncio.Lock()

    async def fetch(self, query: str, *args: Any, **kwargs: Any) -> list[asyncpg.Record]:
        async with self._lock:
            return await self.raw.fetch(query, *args, **kwargs)

    async def fetchrow(self, query: str, *args: Any, **kwargs: Any) -> asyncpg.Record | None:
        async with self._lock:
            return await self.raw.fetchrow(query, *args, **kwargs)

    async def fetchval(self, query: str, *args: Any, **kwargs: Any) -> Any:
        async with self._lock:
            return await self.raw.fetchval(query, *args, **kwargs)

    async def execute(self, query: str, *args: Any, **kwargs: Any) -> str:
        async with self._lock:
            return await self.raw.execute(query, *args, **kwargs)

    async def executemany(self, command: str, args: Any, **kwargs: Any) -> None:
        async with self._lock:
            await self.raw.executemany(command, args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        # Any other coroutine method (copy_records_to_table, prepare, ...) is locked too.
        attribute = getattr(self.raw, name)
        if not inspect.iscoroutinefunction(attribute):
            return attribute

        async def locked(*args: Any, **kwargs: Any) -> Any:
            async with self._lock:
                return await attribute(*args, **kwargs)

        return locked


def scope_sql(tenant: TenantRef) -> str:
    """The statements that put a transaction inside a tenant."""
    return (
        f"SET LOCAL search_path TO {quote_ident(tenant.schema_name)}, ext; "
        f"SET LOCAL ROLE {quote_ident(tenant.role_name)}"
    )


@asynccontextmanager
async def tenant_transaction(tenant: TenantRef) -> AsyncIterator[PostgresTransaction]:
    """Open a transaction confined to `tenant`'s schema and role.

    Nested use for the same tenant joins the outer transaction; nesting another tenant, or
    opening a tenant transaction inside a platform transaction, raises `TenantContextError`.
    """
    active = engine.current_transaction.get()
    if active is not None:
        outer = current_tenant.get()
        if outer is None:
            raise TenantContextError(
                "cannot open a tenant transaction inside a platform transaction"
            )
        if outer.slug != tenant.slug:
            raise TenantContextError(
                f"cannot open tenant {tenant.slug!r} inside tenant {outer.slug!r}"
            )
        yield active
        return

    shard_token = current_shard.set(tenant.shard)
    tenant_token = current_tenant.set(tenant)
    try:
        async with engine.transaction() as transaction:
            raw = transaction.connection
            await raw.execute(scope_sql(tenant))
            transaction.connection = SerializedConnection(raw)
            try:
                yield transaction
            finally:
                # Piccolo releases `transaction.connection` to the pool: give it the real one.
                transaction.connection = raw
    finally:
        current_tenant.reset(tenant_token)
        current_shard.reset(shard_token)
