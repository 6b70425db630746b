"""The engine: one pool per shard, chosen by the tenant; safe defaults on every connection."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from patone.core.runtime.db import current_shard, engine
from patone.core.tables.company import Setting
from patone.platform import provisioning
from patone.tenants.isolation import tenant_transaction
from patone.tenants.migrations import ensure_platform
from patone.tenants.registry import get_tenant
from tests.conftest import DATABASE_URL, unique_slug

SHARD_DB = "patone_test_shard_east"


def _dsn(database: str) -> str:
    base, _, rest = DATABASE_URL.rpartition("/")
    query = ("?" + rest.split("?", 1)[1]) if "?" in rest else ""
    return f"{base}/{database}{query}"


@pytest.fixture
async def two_shards() -> AsyncIterator[str]:
    admin = await asyncpg.connect(DATABASE_URL)
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", SHARD_DB):
            await admin.execute(f'CREATE DATABASE "{SHARD_DB}"')
    finally:
        await admin.close()
    await engine.connect({"default": DATABASE_URL, "east": _dsn(SHARD_DB)}, max_size=12)
    await ensure_platform()
    try:
        yield "east"
    finally:
        await engine.connect({"default": DATABASE_URL}, max_size=12, count_statements=True)


async def _schemas(dsn: str, schema: str) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema))
    finally:
        await conn.close()


async def test_a_tenant_on_another_shard_lives_only_there(two_shards: str) -> None:
    east = await provisioning.create_tenant(unique_slug("east"), "East Co", shard=two_shards)
    home = await provisioning.create_tenant(unique_slug("home"), "Home Co")
    try:
        assert east.shard == "east"
        assert await _schemas(_dsn(SHARD_DB), east.schema_name)
        assert not await _schemas(DATABASE_URL, east.schema_name)
        assert not await _schemas(_dsn(SHARD_DB), home.schema_name)
        for tenant, name in ((east, '"East Co"'), (home, '"Home Co"')):
            async with tenant_transaction(tenant) as tx:
                value = await Setting.select(Setting.value).where(Setting.key == "company.name")
                db = await tx.connection.fetchval("SELECT current_database()")
            assert value[0]["value"] == name
            assert (db == SHARD_DB) is (tenant is east)
    finally:
        for tenant in (east, home):
            await provisioning.delete_tenant(tenant.slug)
            await provisioning.purge_tenant(tenant.slug, force=True)
    assert not await _schemas(_dsn(SHARD_DB), east.schema_name)
    assert await get_tenant(east.slug) is None


async def test_unknown_shard_is_a_clear_error() -> None:
    token = current_shard.set("mars")
    try:
        with pytest.raises(Exception, match="mars"):
            await engine.fetch("SELECT 1")
    finally:
        current_shard.reset(token)


async def test_pooled_connections_have_no_statement_cache_and_a_closed_search_path() -> None:
    rows = await engine.fetch("SELECT current_setting('search_path') AS path")
    assert rows[0]["path"] == "ext"
    pool = engine.pool
    assert pool is not None
    async with pool.acquire() as connection:
        assert connection._stmt_cache.get_max_size() == 0  # type: ignore[attr-defined]


async def test_batch_outside_a_transaction_uses_its_own_connection() -> None:
    from patone.tenants.tables import Plan

    async with await Plan.select(Plan.name).batch(batch_size=1) as batch:
        names = [row["name"] async for rows in batch for row in rows]
    assert {"free", "standard", "enterprise"} <= set(names)
