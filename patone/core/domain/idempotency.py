"""Idempotent creates: a retry with the same key returns the first result and creates nothing.

A key belongs to one caller (a staff user, a partner client, a customer) and one operation in
one company, and it remembers a hash of the input it was first used with: another caller's
same key is simply another key, and the same key sent again with another input is refused
(`idempotency_key_reused`) rather than answered with the first result.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from patone.core.common.permissions import Actor
from patone.core.runtime.clock import now
from patone.core.runtime.db import engine
from patone.core.runtime.errors import UserError
from patone.tenants.isolation import TenantRef, tenant_transaction

T = TypeVar("T")
KEY_MAX = 200
FIELD = "idempotencyKey"  # the argument's name in the API
_UNIQUE = "idempotency_keys_operation_caller_key"


def input_hash(given: Any) -> str:
    """sha256 of the input as canonical JSON (keys sorted): the same input hashes the same
    whatever order its fields came in."""
    text = json.dumps(given, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


async def idempotent(
    tenant: TenantRef,
    actor: Actor,
    operation: str,
    key: str | None,
    given: Any,
    create: Callable[[], Awaitable[tuple[int, T]]],
    load: Callable[[int], Awaitable[T]],
) -> T:
    """Run `create` once per (operation, caller, key); later calls with the same input (`given`,
    parsed, JSON-able) `load` the first result, and with another input are refused.

    `create` runs inside the tenant transaction and returns (id, result). Two concurrent calls
    with one key: the second waits for the first's unique-index entry and then loads its result.
    """
    if key is None:
        async with tenant_transaction(tenant):
            return (await create())[1]
    if not key or len(key) > KEY_MAX:
        raise UserError("invalid", f"idempotency key must be 1 to {KEY_MAX} characters", FIELD)
    caller = f"{actor.kind}:{actor.id}"
    digest = input_hash(given)
    for _ in range(2):
        try:
            async with tenant_transaction(tenant):
                rows = await engine.fetch(
                    "SELECT entity_id, input_sha256 FROM idempotency_keys "
                    "WHERE operation = $1 AND caller = $2 AND key = $3",
                    operation,
                    caller,
                    key,
                )
                if rows:
                    if rows[0]["input_sha256"] != digest:
                        raise UserError(
                            "idempotency_key_reused",
                            "This idempotency key was used for a different input; "
                            "use a new key for a new request.",
                            FIELD,
                        )
                    return await load(int(rows[0]["entity_id"]))
                entity_id, result = await create()
                await engine.execute(
                    "INSERT INTO idempotency_keys "
                    "(operation, caller, key, input_sha256, entity_id, created_at) "
                    "VALUES ($1, $2, $3, $4, $5, $6)",
                    operation,
                    caller,
                    key,
                    digest,
                    str(entity_id),
                    now(),
                )
                return result
        except asyncpg.UniqueViolationError as error:
            if error.constraint_name != _UNIQUE:
                raise
            continue  # lost the race: the winner's row is committed now; load it
    raise UserError(
        "idempotency_key_in_use", "the same idempotency key is being used concurrently", FIELD
    )
