"""Idempotent creates: a retry with the same key returns the first result and creates nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from patone.core.clock import now
from patone.core.db import engine
from patone.core.errors import UserError
from patone.tenants.isolation import TenantRef, tenant_transaction

T = TypeVar("T")
KEY_MAX = 200


async def idempotent(
    tenant: TenantRef,
    operation: str,
    key: str | None,
    create: Callable[[], Awaitable[tuple[int, T]]],
    load: Callable[[int], Awaitable[T]],
) -> T:
    """Run `create` once per (operation, key); later calls `load` the first result.

    `create` runs inside the tenant transaction and returns (id, result). Two concurrent calls
    with one key: the second waits for the first's unique-index entry and then loads its result.
    """
    if key is None:
        async with tenant_transaction(tenant):
            return (await create())[1]
    if not key or len(key) > KEY_MAX:
        raise UserError("invalid", f"idempotency key must be 1 to {KEY_MAX} characters", "key")
    for _ in range(2):
        try:
            async with tenant_transaction(tenant):
                rows = await engine.fetch(
                    "SELECT entity_id FROM idempotency_keys WHERE operation = $1 AND key = $2",
                    operation,
                    key,
                )
                if rows:
                    return await load(int(rows[0]["entity_id"]))
                entity_id, result = await create()
                await engine.execute(
                    "INSERT INTO idempotency_keys (operation, key, entity_id, created_at) "
                    "VALUES ($1, $2, $3, $4)",
                    operation,
                    key,
                    str(entity_id),
                    now(),
                )
                return result
        except asyncpg.UniqueViolationError as error:
            if error.constraint_name != "idempotency_keys_operation_key":
                raise
            continue  # lost the race: the winner's row is committed now; load it
    raise UserError("conflict", "the same idempotency key is being used concurrently", "key")
