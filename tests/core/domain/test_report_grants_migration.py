"""Tenant migration 0021 on a company made before it: nobody loses a report figure."""

from __future__ import annotations

from patone.core.domain.piccolo_migrations import tenant_0021_report_grants
from patone.core.runtime.db import engine
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo


async def _roles(tenant: TenantInfo) -> dict[str, set[str]]:
    async with tenant_transaction(tenant):
        rows = await engine.fetch("SELECT name, permissions FROM roles")
    return {r["name"]: set(r["permissions"]) for r in rows}


async def test_roles_that_saw_reports_keep_their_revenue(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    bolt_before = await _roles(bolt)
    async with tenant_transaction(acme):
        # Acme as it was before: no revenue permission, and its admin had taken reports from
        # Managers and given them to Drivers.
        await engine.execute(
            "UPDATE roles SET permissions = array_remove(array_remove(permissions, "
            "'reports.revenue'), CASE WHEN name IN ('manager', 'dispatcher') "
            "THEN 'reports.view' ELSE '' END)"
        )
        await engine.execute(
            "UPDATE roles SET permissions = array_append(permissions, 'reports.view') "
            "WHERE name = 'driver'"
        )
        migration = await tenant_0021_report_grants.forwards()
        for step in migration.raw:
            await step()
    roles = await _roles(acme)
    assert {"reports.view", "reports.revenue"} <= roles["admin"]
    assert {"reports.view", "reports.revenue"} <= roles["driver"]
    assert "reports.view" not in roles["manager"] and "reports.revenue" not in roles["manager"]
    assert "reports.view" in roles["dispatcher"] and "reports.revenue" not in roles["dispatcher"]
    assert all(len(p) == len(set(p)) for p in map(list, roles.values()))
    # The other company is untouched.
    assert await _roles(bolt) == bolt_before
