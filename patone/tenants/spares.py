"""A small pool of ready-made, empty tenant schemas that provisioning renames and hands over.

Replaying the captured template costs about 200 ms whatever the number of tenants: most of it
goes to creating each table's and index's files (and syncing every new btree index to disk),
one per relation, ~180 of them. Renaming a schema and its role is a catalog update of a few
rows. So spares are built ahead of time, off the request path, exactly as provisioning would
build a tenant (the same script, under their own role), and `create_tenant` renames one to
`t_<slug>` / `t_<slug>_role` and writes what is the company's own (its name, its registry row).
Everything inside a schema refers to it and to its role by oid (ownership, grants, column
defaults' sequences, foreign keys), so a rename leaves nothing pointing at the old name.

Spares live in the catalog only, never in `platform.tenants`: listings, `patone migrate`,
purges and every other registry reader never see them. Each spare's schema comment records the
digest of the template it was built from; provisioning takes only a spare of its own template,
and `patone migrate` drops those of any other (the refill builds new ones). Spare names
(`t__spare_<hex>`) cannot be a tenant's: a slug has no underscore, so `t_<slug>` never starts
with `t__`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from dataclasses import dataclass

import asyncpg

from patone.core.runtime.db import DEFAULT_SHARD, engine
from patone.tenants.migrations import TenantTemplate, get_template
from patone.tenants.naming import quote_ident

log = logging.getLogger(__name__)

SPARE_PREFIX = "t__spare_"
_SPARE_PATTERN = r"^t__spare_[0-9a-f]+$"
# Two-key advisory locks (their key space is apart from the one-key platform lock): one per
# spare while it is taken or dropped, one per shard while it is topped up.
_LOCK_CLASS = 0x7370  # "sp"
_TOP_UP_KEY = 0


def template_digest(template: TenantTemplate) -> str:
    """What a spare must have been built from to be handed over with this template."""
    text = "\n".join(template.ids) + "\n" + template.full_script
    return "patone spare " + hashlib.sha256(text.encode()).hexdigest()[:24]


def _role(schema: str) -> str:
    return schema + "_role"


async def is_superuser(connection: asyncpg.Connection) -> bool:
    return bool(await connection.fetchval("SELECT current_setting('is_superuser') = 'on'"))


def build_script(schema_name: str, role_name: str, template: TenantTemplate, grant: bool) -> str:
    """The SQL that creates a role and a schema it owns and fills the schema from the template:
    what a tenant and a spare are both made of."""
    schema, role = quote_ident(schema_name), quote_ident(role_name)
    return "\n".join(
        [
            f"CREATE ROLE {role} NOLOGIN;",
            f"GRANT {role} TO CURRENT_USER;" if grant else "",
            f"CREATE SCHEMA {schema} AUTHORIZATION {role};",
            f"SET LOCAL search_path TO {schema}, ext; SET LOCAL ROLE {role};",
            template.full_script,
            "RESET ROLE; SET LOCAL search_path TO ext;",
        ]
    )


async def build_spare(template: TenantTemplate, shard: str = DEFAULT_SHARD) -> str:
    """Build one spare schema for `template` on `shard`; returns its name."""
    schema = SPARE_PREFIX + secrets.token_hex(8)
    async with engine.acquire(shard) as connection, connection.transaction():
        grant = not await is_superuser(connection)
        await connection.execute(
            build_script(schema, _role(schema), template, grant)
            + f"\nCOMMENT ON SCHEMA {quote_ident(schema)} IS "
            + "'"
            + template_digest(template)
            + "';"
        )
    return schema


@dataclass(frozen=True)
class Spare:
    schema_name: str
    digest: str | None


async def list_spares(shard: str = DEFAULT_SHARD) -> list[Spare]:
    """Every spare on `shard`, of any template."""
    rows = await _fetch(
        shard,
        "SELECT nspname, obj_description(oid, 'pg_namespace') AS digest FROM pg_namespace "
        "WHERE nspname ~ $1 ORDER BY oid",
        _SPARE_PATTERN,
    )
    return [Spare(r["nspname"], r["digest"]) for r in rows]


async def _fetch(shard: str, query: str, *args: object) -> list[asyncpg.Record]:
    async with engine.acquire(shard) as connection:
        return list(await connection.fetch(query, *args))


async def claim_spare(connection: asyncpg.Connection, template: TenantTemplate) -> str | None:
    """Lock a free spare of `template` for the caller's transaction on its shard; None when
    there is none.

    The lock is transaction-level and tried, not waited for, so two provisionings never claim
    the same spare nor wait on each other. A spare another transaction renamed just before its
    lock was granted is gone by then: that claim finds nothing and the caller replays.
    """
    spare = await connection.fetchval(
        # OFFSET 0 keeps the lock out of the inner scan: only this template's spares are tried,
        # one at a time, until one is granted.
        "SELECT nspname FROM (SELECT nspname FROM pg_namespace WHERE nspname ~ $1 "
        "AND obj_description(oid, 'pg_namespace') = $2 ORDER BY oid OFFSET 0) AS free "
        "WHERE pg_try_advisory_xact_lock($3, hashtext(nspname)) LIMIT 1",
        _SPARE_PATTERN,
        template_digest(template),
        _LOCK_CLASS,
    )
    if spare is None:
        return None
    if not await connection.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", spare):
        return None
    return str(spare)


def hand_over_script(spare: str, schema_name: str, role_name: str) -> str:
    """The SQL that renames a claimed spare and its role to a tenant's names."""
    return (
        f"ALTER SCHEMA {quote_ident(spare)} RENAME TO {quote_ident(schema_name)}; "
        f"ALTER ROLE {quote_ident(_role(spare))} RENAME TO {quote_ident(role_name)}; "
        f"COMMENT ON SCHEMA {quote_ident(schema_name)} IS NULL;"
    )


async def drop_spare(schema_name: str, shard: str = DEFAULT_SHARD) -> bool:
    """Drop one spare and its role, unless it is being taken right now."""
    async with engine.acquire(shard) as connection, connection.transaction():
        if not await connection.fetchval(
            "SELECT pg_try_advisory_xact_lock($1, hashtext($2)) "
            "AND EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $2)",
            _LOCK_CLASS,
            schema_name,
        ):
            return False
        await connection.execute(
            f"DROP SCHEMA {quote_ident(schema_name)} CASCADE; "
            f"DROP ROLE {quote_ident(_role(schema_name))}"
        )
    return True


async def discard_stale(template: TenantTemplate, shard: str = DEFAULT_SHARD) -> int:
    """Drop the spares built from any other template than `template` (after `patone migrate`,
    they lack migrations); returns how many."""
    digest = template_digest(template)
    dropped = 0
    for spare in await list_spares(shard):
        if spare.digest != digest and await drop_spare(spare.schema_name, shard):
            dropped += 1
    return dropped


async def refresh(shards: list[str]) -> int:
    """Drop, on every shard, the spares the current migrations have outdated (`patone migrate`
    runs this; the app servers build new ones). Captures the template only when spares exist."""
    dropped = 0
    for shard in shards:
        if await list_spares(shard):
            dropped += await discard_stale(await get_template(), shard)
    return dropped


async def top_up(size: int, template: TenantTemplate, shard: str = DEFAULT_SHARD) -> int:
    """Build spares of `template` until `shard` holds `size`; returns how many were built.

    One process tops a shard up at a time (another finds the lock taken and leaves it be).
    """
    if size <= 0:
        return 0
    built = 0
    async with engine.acquire(shard) as guard, guard.transaction():
        if not await guard.fetchval(
            "SELECT pg_try_advisory_xact_lock($1, $2)", _LOCK_CLASS, _TOP_UP_KEY
        ):
            return 0
        digest = template_digest(template)
        have = sum(1 for spare in await list_spares(shard) if spare.digest == digest)
        for _ in range(size - have):
            await build_spare(template, shard)
            built += 1
    return built


async def drop_all(shard: str = DEFAULT_SHARD) -> int:
    """Drop every spare on `shard` (a database about to be dropped leaves its roles behind)."""
    return sum([await drop_spare(spare.schema_name, shard) for spare in await list_spares(shard)])


# --- keeping the pool topped up -----------------------------------------------------------------

_taken = asyncio.Event()


def spare_taken() -> None:
    """Wake this process's refill (a spare was just handed over)."""
    _taken.set()


async def keep_topped_up(
    size: int, every: float = 60.0, template: TenantTemplate | None = None
) -> None:
    """Keep `size` spares of `template` (the shipped migrations') on each shard; runs until
    cancelled.

    Refills right after this process hands one over, and every `every` seconds for spares
    taken by other processes (`patone tenants create`, other app servers).
    """
    while True:
        _taken.clear()
        try:
            current = template or await get_template()
            for shard in engine.shards:
                await top_up(size, current, shard)
        except Exception:  # the pool stays as it is until the next turn; provisioning replays
            log.exception("could not top up the spare schemas")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_taken.wait(), every)
