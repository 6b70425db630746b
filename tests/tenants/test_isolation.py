"""Tenant isolation: every read and write stays in its tenant, checked by Postgres itself."""

from __future__ import annotations

import asyncio
import random

import asyncpg
import pytest

from patone.core.runtime.db import engine
from patone.core.tables.company import Setting
from patone.tenants.isolation import (
    TenantContextError,
    get_current_tenant,
    tenant_transaction,
)
from tests.conftest import MakeTenant


async def _name(tenant) -> str:  # type: ignore[no-untyped-def]
    async with tenant_transaction(tenant):
        row = await Setting.select(Setting.value).where(Setting.key == "company.name").first()
    assert row is not None
    return str(row["value"])


async def test_identical_ids_in_two_tenants_stay_apart(make_tenant: MakeTenant) -> None:
    acme = await make_tenant("acme", name="Acme Towing")
    bolt = await make_tenant("bolt", name="Bolt Recovery")
    # Both schemas were made from one template: the same ids exist in each.
    async with tenant_transaction(acme):
        acme_ids = [r["id"] for r in await Setting.select(Setting.id).run()]
        await Setting.update({Setting.value: '"acme-only"'}).where(Setting.key == "units")
    async with tenant_transaction(bolt):
        bolt_ids = [r["id"] for r in await Setting.select(Setting.id).run()]
        units = await Setting.select(Setting.value).where(Setting.key == "units").first()
    assert acme_ids == bolt_ids
    assert units is not None and units["value"] == '"km"'
    assert await _name(acme) == '"Acme Towing"'
    assert await _name(bolt) == '"Bolt Recovery"'


async def test_raw_sql_naming_another_tenants_schema_is_denied(make_tenant: MakeTenant) -> None:
    acme = await make_tenant("acme")
    bolt = await make_tenant("bolt")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with tenant_transaction(acme) as tx:
            await tx.connection.fetch(f'SELECT * FROM "{bolt.schema_name}".settings')
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with tenant_transaction(acme) as tx:
            await tx.connection.execute(f'UPDATE "{bolt.schema_name}".settings SET value = \'"x"\'')
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with tenant_transaction(acme) as tx:
            await tx.connection.fetch("SELECT * FROM platform.tenants")
    assert await _name(bolt) != '"x"'


async def test_fifty_concurrent_tasks_over_five_tenants_never_cross(
    make_tenant: MakeTenant,
) -> None:
    tenants = [await make_tenant(f"c{i}", name=f"Company {i}") for i in range(5)]
    rng = random.Random(7)
    wrong: list[str] = []

    async def task(n: int) -> None:
        tenant = rng.choice(tenants)
        for _ in range(5):
            async with tenant_transaction(tenant) as tx:
                await Setting.insert(
                    Setting(key=f"task.{n}.{rng.random()}", value=f'"{tenant.slug}"')
                )
                schema = await tx.connection.fetchval("SELECT current_schema()")
                if schema != tenant.schema_name:
                    wrong.append(f"{tenant.slug} ran in {schema}")
                rows = await Setting.select(Setting.value).where(Setting.key.like("task.%"))
                wrong.extend(
                    f"{tenant.slug} read {r['value']}"
                    for r in rows
                    if r["value"] != f'"{tenant.slug}"'
                )
                await asyncio.sleep(0)

    await asyncio.gather(*(task(n) for n in range(50)))
    assert wrong == []
    total = 0
    for tenant in tenants:
        async with tenant_transaction(tenant):
            rows = await Setting.select(Setting.value).where(Setting.key.like("task.%"))
        assert {r["value"] for r in rows} <= {f'"{tenant.slug}"'}
        total += len(rows)
    assert total == 50 * 5


async def test_batch_reads_stay_inside_the_tenant(make_tenant: MakeTenant) -> None:
    acme = await make_tenant("acme", name="Acme")
    await make_tenant("bolt", name="Bolt")
    async with tenant_transaction(acme):
        seen: list[str] = []
        async with await Setting.select(Setting.value).batch(batch_size=2) as batch:
            async for rows in batch:
                seen.extend(r["value"] for r in rows)
        # The transaction is still usable after the batch.
        assert await Setting.count() == len(seen)
    assert '"Acme"' in seen and '"Bolt"' not in seen


async def test_tenant_table_outside_a_tenant_transaction_fails_safely(
    make_tenant: MakeTenant,
) -> None:
    await make_tenant("acme")
    with pytest.raises(asyncpg.UndefinedTableError):
        await Setting.select().run()


async def test_same_sql_text_across_schemas_survives_ddl(make_tenant: MakeTenant) -> None:
    """asyncpg's statement cache would replay a stale plan after DDL in one schema."""
    acme = await make_tenant("acme")
    bolt = await make_tenant("bolt")
    sql = "SELECT * FROM settings ORDER BY id LIMIT 1"
    for tenant in (acme, bolt, acme):
        async with tenant_transaction(tenant) as tx:
            await tx.connection.fetch(sql)
    async with tenant_transaction(acme) as tx:
        await tx.connection.execute("ALTER TABLE settings ADD COLUMN extra int DEFAULT 1")
    for tenant in (acme, bolt):
        async with tenant_transaction(tenant) as tx:
            row = await tx.connection.fetchrow(sql)
        assert row is not None
        assert ("extra" in list(row.keys())) == (tenant is acme)


async def test_concurrent_queries_on_one_tenant_transaction_are_serialised(
    make_tenant: MakeTenant,
) -> None:
    """graphql-core resolves siblings concurrently; sharing a transaction must not crash."""
    acme = await make_tenant("acme")
    async with tenant_transaction(acme):
        counts = await asyncio.gather(*(Setting.count() for _ in range(20)))
    assert len(set(counts)) == 1 and counts[0] >= 5


async def test_nesting_same_tenant_joins_and_other_tenant_is_refused(
    make_tenant: MakeTenant,
) -> None:
    acme = await make_tenant("acme")
    bolt = await make_tenant("bolt")
    async with tenant_transaction(acme) as outer:
        async with tenant_transaction(acme) as inner:
            assert inner is outer
            assert get_current_tenant().slug == acme.slug
        with pytest.raises(TenantContextError):
            async with tenant_transaction(bolt):
                pass
    async with engine.transaction():
        with pytest.raises(TenantContextError):
            async with tenant_transaction(acme):
                pass
    with pytest.raises(TenantContextError):
        get_current_tenant()


async def test_a_failed_block_rolls_back_and_leaves_the_pool_clean(
    make_tenant: MakeTenant,
) -> None:
    acme = await make_tenant("acme")
    with pytest.raises(RuntimeError):
        async with tenant_transaction(acme):
            await Setting.insert(Setting(key="doomed", value='"x"'))
            raise RuntimeError("boom")
    async with tenant_transaction(acme):
        assert not await Setting.exists().where(Setting.key == "doomed")
    # Connections go back to the pool without the tenant's role or search_path.
    user, path = (await engine.fetch("SELECT current_user, current_setting('search_path')"))[0]
    assert not user.startswith("t_") and path == "ext"
