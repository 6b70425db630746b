"""The demo company: created once, back new after a purge, migrated at each start."""

from __future__ import annotations

import pytest

from patone.demo import tenant as demo_tenant
from patone.platform import provisioning
from patone.tenants.registry import TenantInfo
from tests.conftest import MakeTenant, unique_slug


async def test_a_purged_demo_company_comes_back_new_at_the_next_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slug = unique_slug("demo")
    monkeypatch.setattr(demo_tenant, "DEMO_SLUG", slug)  # not the shared `demo`
    first, _ = await demo_tenant.ensure_demo_tenant("http://demo.example")
    try:
        await provisioning.delete_tenant(slug)
        await provisioning.purge_tenant(slug, force=True)
        again, link = await demo_tenant.ensure_demo_tenant("http://demo.example")
        assert again.slug == slug and again.id != first.id and link is not None
    finally:
        await provisioning.delete_tenant(slug)
        await provisioning.purge_tenant(slug, force=True)


async def _one_migration_behind(tenant: TenantInfo) -> str:
    """Undo one tenant migration (the API client of requests) in `tenant`'s schema and
    registry row; its id."""
    from patone.core.domain.piccolo_migrations import tenant_0019_request_api_clients
    from patone.core.runtime.db import engine

    undone = str(tenant_0019_request_api_clients.ID)
    await engine.execute(
        f'ALTER TABLE "{tenant.schema_name}".service_requests DROP COLUMN api_client;'
        f'UPDATE "{tenant.schema_name}".roles SET permissions = '
        "array_remove(permissions, 'requests.view_own');"
        "UPDATE platform.tenants SET applied_migrations = array_remove(applied_migrations, "
        f"'{undone}') WHERE id = '{tenant.id}'"
    )
    return undone


async def _applied(tenant: TenantInfo) -> list[str]:
    from patone.core.runtime.db import engine

    rows = await engine.fetch(
        "SELECT applied_migrations FROM platform.tenants WHERE id = $1", tenant.id
    )
    return list(rows[0]["applied_migrations"])


async def test_the_demo_company_is_migrated_at_the_next_start_and_no_other(
    monkeypatch: pytest.MonkeyPatch, make_tenant: MakeTenant
) -> None:
    slug = unique_slug("demo")
    monkeypatch.setattr(demo_tenant, "DEMO_SLUG", slug)  # not the shared `demo`
    demo, _ = await demo_tenant.ensure_demo_tenant("http://demo.example")
    other = await make_tenant("other")
    try:
        newest = await _one_migration_behind(demo)
        await _one_migration_behind(other)
        again, _ = await demo_tenant.ensure_demo_tenant("http://demo.example")
        assert again.id == demo.id and newest in await _applied(demo)
        await _requests_read_whole(demo)  # the column is back
        assert newest not in await _applied(other)  # others wait for `patone migrate`
    finally:
        await provisioning.delete_tenant(slug)
        await provisioning.purge_tenant(slug, force=True)


async def _requests_read_whole(tenant: TenantInfo) -> None:
    from patone.core.common.permissions import SYSTEM
    from patone.core.domain.service_requests import list_requests

    page = await list_requests(tenant, SYSTEM, first=5)
    assert page.rows and page.rows[0].api_client is None, "the demo company has requests"
