"""Creating tenants from the captured template, all or nothing, and their life cycle."""

from __future__ import annotations

import dataclasses

import pytest

from patone.core.runtime.db import engine
from patone.core.runtime.errors import Conflict, UserError
from patone.core.runtime.redis import get_redis, tenant_key
from patone.core.tables.company import Setting
from patone.platform import provisioning
from patone.tenants.isolation import tenant_transaction
from patone.tenants.migrations import get_template, tenant_migrations
from patone.tenants.registry import get_tenant
from tests.conftest import MakeTenant, unique_slug


async def _exists(schema: str, role: str) -> tuple[bool, bool]:
    row = (
        await engine.fetch(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AS schema, "
            "EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $2) AS role",
            schema,
            role,
        )
    )[0]
    return row["schema"], row["role"]


async def test_new_tenant_gets_schema_role_tables_defaults_and_registry_row(
    make_tenant: MakeTenant,
) -> None:
    tenant = await make_tenant("acme", name="Acme Towing", plan="free", domains=["help.acme.test"])
    assert tenant.status == "active" and tenant.plan == "free"
    assert tenant.domains == ("help.acme.test",)
    assert tenant.applied_migrations == tenant_migrations().ids
    assert await _exists(tenant.schema_name, tenant.role_name) == (True, True)
    async with tenant_transaction(tenant) as tx:
        settings = {r["key"]: r["value"] for r in await Setting.select().run()}
        owner = await tx.connection.fetchval(
            "SELECT tableowner FROM pg_tables WHERE schemaname = $1 AND tablename = 'settings'",
            tenant.schema_name,
        )
        ran = await tx.connection.fetchval("SELECT count(*) FROM migration")
    assert settings["company.name"] == '"Acme Towing"'
    assert settings["units"] == '"km"' and settings["currency"] == '"USD"'
    assert owner == tenant.role_name
    assert ran == len(tenant_migrations().ids)


async def test_provisioning_that_fails_half_way_leaves_nothing_behind() -> None:
    template = await get_template()
    broken = dataclasses.replace(
        template,
        scripts={
            **template.scripts,
            template.ids[-1]: template.scripts[template.ids[-1]]
            + "\nCREATE TABLE broken (x no_such_type);",
        },
    )
    slug = unique_slug("half")
    with pytest.raises(Exception, match="no_such_type"):
        await provisioning.create_tenant(slug, template=broken)
    assert await get_tenant(slug) is None
    assert await _exists(f"t_{slug.replace('-', '_')}", f"t_{slug.replace('-', '_')}_role") == (
        False,
        False,
    )


async def test_registry_failure_after_the_ddl_also_leaves_nothing(
    make_tenant: MakeTenant,
) -> None:
    first = await make_tenant("dom", domains=["shared.example.test"])
    slug = unique_slug("dom")
    with pytest.raises(Conflict) as caught:
        await provisioning.create_tenant(slug, domains=["shared.example.test"])
    assert caught.value.field == "domains"
    assert await get_tenant(slug) is None
    schema = f"t_{slug.replace('-', '_')}"
    assert await _exists(schema, schema + "_role") == (False, False)
    assert (await get_tenant(first.slug)) is not None


async def test_taken_reserved_and_malformed_slugs_get_clear_errors(
    make_tenant: MakeTenant,
) -> None:
    tenant = await make_tenant("taken")
    with pytest.raises(Conflict) as taken:
        await provisioning.create_tenant(tenant.slug)
    assert (taken.value.code, taken.value.field) == ("taken", "slug")
    assert tenant.slug in taken.value.message
    for slug, code in [("www", "reserved"), ("Bad_Slug", "invalid"), ("a", "too_short")]:
        with pytest.raises(UserError) as caught:
            await provisioning.create_tenant(slug)
        assert (caught.value.code, caught.value.field) == (code, "slug")


async def test_unknown_plan_bad_name_and_bad_domain_are_refused() -> None:
    slug = unique_slug("bad")
    cases = [
        ({"plan": "platinum"}, "plan"),
        ({"name": "  "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"domains": ["not a domain"]}, "domains"),
        ({"shard": "mars"}, "shard"),
    ]
    for kwargs, field in cases:
        with pytest.raises(UserError) as caught:
            await provisioning.create_tenant(slug, **kwargs)  # type: ignore[arg-type]
        assert caught.value.field == field
        assert await get_tenant(slug) is None


async def test_suspend_resume_delete_restore(make_tenant: MakeTenant) -> None:
    tenant = await make_tenant("life")
    with pytest.raises(UserError):
        await provisioning.suspend_tenant(tenant.slug, " ")
    suspended = await provisioning.suspend_tenant(tenant.slug, "invoice 42 unpaid")
    assert (suspended.status, suspended.status_reason) == ("suspended", "invoice 42 unpaid")
    assert (await provisioning.resume_tenant(tenant.slug)).status == "active"
    with pytest.raises(UserError):
        await provisioning.resume_tenant(tenant.slug)
    deleted = await provisioning.delete_tenant(tenant.slug, grace_days=30)
    assert deleted.status == "deleted" and deleted.purge_after is not None
    with pytest.raises(UserError) as early:
        await provisioning.purge_tenant(tenant.slug)
    assert early.value.code == "grace_period"
    restored = await provisioning.restore_tenant(tenant.slug)
    assert restored.status == "active" and restored.purge_after is None
    async with tenant_transaction(restored):
        assert await Setting.count() >= 5  # the data survived the soft delete


async def test_purge_drops_schema_role_row_and_redis_keys(make_tenant: MakeTenant) -> None:
    tenant = await make_tenant("gone")
    other = await make_tenant("stays")
    redis = get_redis()
    await redis.set(tenant_key(tenant.slug, "cache", "x"), "1")
    await redis.hset(tenant_key(tenant.slug, "drivers"), "d1", "1")
    await redis.set(tenant_key(other.slug, "cache", "x"), "1")
    with pytest.raises(UserError) as active:
        await provisioning.purge_tenant(tenant.slug, force=True)
    assert active.value.code == "not_deleted"
    await provisioning.delete_tenant(tenant.slug, grace_days=0)
    await provisioning.purge_tenant(tenant.slug)
    assert await get_tenant(tenant.slug) is None
    assert await _exists(tenant.schema_name, tenant.role_name) == (False, False)
    assert await redis.keys(tenant_key(tenant.slug, "*")) == []
    assert await redis.get(tenant_key(other.slug, "cache", "x")) == "1"
    with pytest.raises(UserError) as missing:
        await provisioning.purge_tenant(tenant.slug)
    assert missing.value.status == 404


async def test_a_purged_slug_is_refused_unless_the_operator_reuses_it_with_a_fresh_id(
    make_tenant: MakeTenant,
) -> None:
    lima = await make_tenant("lima")
    other = await make_tenant("mike")
    await provisioning.delete_tenant(lima.slug)
    await provisioning.purge_tenant(lima.slug, force=True)
    with pytest.raises(Conflict) as refused:
        await provisioning.create_tenant(lima.slug)
    assert (refused.value.code, refused.value.field) == ("purged_slug", "slug")
    assert "reuse" in refused.value.message
    assert await get_tenant(lima.slug) is None
    again = await provisioning.create_tenant(lima.slug, reuse_purged_slug=True)
    assert again.id != lima.id and again.status == "active"
    with pytest.raises(Conflict):  # the flag does not take a live company's slug
        await provisioning.create_tenant(other.slug, reuse_purged_slug=True)


async def test_a_purge_finishes_when_the_schema_is_already_gone(make_tenant: MakeTenant) -> None:
    half = await make_tenant("half")
    other = await make_tenant("whole")
    # As a creation on another shard that committed its row but not its schema leaves it.
    await engine.execute(f'DROP SCHEMA "{half.schema_name}" CASCADE')
    await provisioning.delete_tenant(half.slug)
    await provisioning.purge_tenant(half.slug, force=True)
    assert await get_tenant(half.slug) is None
    assert await _exists(half.schema_name, half.role_name) == (False, False)
    assert await get_tenant(other.slug) is not None
