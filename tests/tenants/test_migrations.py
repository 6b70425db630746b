"""Per-schema migrations: captured once, replayed per tenant, resumable, failures isolated."""

from __future__ import annotations

import json

from patone.core.runtime.db import engine
from patone.tenants.isolation import tenant_transaction
from patone.tenants.migrations import (
    MigrationSet,
    capture_template,
    ensure_platform,
    migrate_tenants,
    render,
    sql_literal,
    tenant_migrations,
)
from patone.tenants.registry import get_tenant
from tests.conftest import MakeTenant

BASE = "patone.core.domain.piccolo_migrations"


def with_note() -> MigrationSet:
    return MigrationSet.from_packages("tenant", BASE, "tests.tenants.migrations_note")


async def _columns(schema: str) -> set[str]:
    rows = await engine.fetch(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = $1 AND table_name = 'settings'",
        schema,
    )
    return {r["column_name"] for r in rows}


async def test_capture_records_ddl_and_data_and_leaves_no_scratch_schema() -> None:
    template = await capture_template(tenant_migrations())
    assert 'CREATE TABLE "settings"' in template.full_script
    assert "INSERT INTO settings" in template.full_script
    assert 'CREATE TABLE IF NOT EXISTS "migration"' in template.preamble
    leftovers = await engine.fetch(
        "SELECT nspname FROM pg_namespace WHERE nspname LIKE '\\_patone\\_capture%'"
    )
    assert leftovers == []


async def test_migrate_reports_a_broken_tenant_and_a_rerun_finishes_it(
    make_tenant: MakeTenant,
) -> None:
    a, b, c = [await make_tenant(s) for s in ("ma", "mb", "mc")]
    slugs = [a.slug, b.slug, c.slug]
    # Break b: the column the new migration adds is already there, with another type.
    await engine.execute(f'ALTER TABLE "{b.schema_name}".settings ADD COLUMN note integer')

    first = await migrate_tenants(with_note(), slugs=slugs, concurrency=2)
    status = {r.slug: r for r in first.results}
    assert status[a.slug].status == status[c.slug].status == "migrated"
    assert status[b.slug].status == "failed" and "note" in (status[b.slug].error or "")
    assert status[b.slug].attempts == 2  # retried once before being reported
    assert first.failed == [status[b.slug]]
    assert "note" in await _columns(a.schema_name)
    b_after = await get_tenant(b.slug)
    assert b_after is not None and b_after.applied_migrations == tenant_migrations().ids

    await engine.execute(f'ALTER TABLE "{b.schema_name}".settings DROP COLUMN note')
    second = await migrate_tenants(with_note(), slugs=slugs)
    status = {r.slug: r.status for r in second.results}
    assert status == {a.slug: "up to date", b.slug: "migrated", c.slug: "up to date"}
    assert second.ok
    for tenant in (a, b, c):
        refreshed = await get_tenant(tenant.slug)
        assert refreshed is not None and refreshed.applied_migrations == with_note().ids
        async with tenant_transaction(refreshed) as tx:
            names = [r["name"] for r in await tx.connection.fetch("SELECT name FROM migration")]
        assert names[-1] == with_note().ids[-1]
        assert len(names) == len(set(names))


async def test_data_dependent_migration_runs_live_in_each_tenant(
    make_tenant: MakeTenant,
) -> None:
    acme = await make_tenant("live", name="Acme Road Rescue")
    bolt = await make_tenant("live", name="Bolt Towing")
    live = MigrationSet.from_packages("tenant", BASE, "tests.tenants.migrations_live")
    report = await migrate_tenants(live, slugs=[acme.slug, bolt.slug])
    assert report.ok and len(report.migrated) == 2
    for tenant, initials in ((acme, "ARR"), (bolt, "BT")):
        async with tenant_transaction(tenant) as tx:
            value = await tx.connection.fetchval(
                "SELECT value FROM settings WHERE key = 'company.initials'"
            )
        assert json.loads(value) == initials


async def test_new_tenant_from_an_extended_set_needs_no_migration(
    make_tenant: MakeTenant,
) -> None:
    from patone.tenants.migrations import get_template

    template = await get_template(with_note())
    tenant = await make_tenant("fresh", template=template)
    assert "note" in await _columns(tenant.schema_name)
    report = await migrate_tenants(with_note(), slugs=[tenant.slug])
    assert [r.status for r in report.results] == ["up to date"]


async def test_platform_bootstrap_is_idempotent() -> None:
    assert await ensure_platform() == []
    plans = {r["name"] for r in await engine.fetch("SELECT name FROM platform.plans")}
    assert {"free", "standard", "enterprise"} <= plans


def test_recorded_arguments_render_as_literals() -> None:
    assert render("INSERT INTO t VALUES ($1, $2, $10)", list(range(1, 11))) == (
        "INSERT INTO t VALUES (1, 2, 10)"
    )
    assert sql_literal("it's") == "'it''s'"
    assert sql_literal(None) == "NULL" and sql_literal(True) == "TRUE"
    assert sql_literal(["a", 1]) == "ARRAY['a', 1]"
