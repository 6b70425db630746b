"""Ready-made spare schemas: handed over under a company's name, refilled, rebuilt when the
migrations change, and never seen as companies.

Each test builds spares of a template of its own (the shipped one plus an empty migration with a
unique id), so no other provisioning in this database takes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from patone.core.runtime.db import engine
from patone.core.runtime.errors import NotFound
from patone.platform import provisioning
from patone.tenants.isolation import tenant_transaction
from patone.tenants.migrations import (
    TenantTemplate,
    capture_template,
    get_template,
    migrate_tenants,
    tenant_migrations,
)
from patone.tenants.registry import TenantInfo, list_tenants
from patone.tenants.spares import (
    SPARE_PREFIX,
    build_spare,
    discard_stale,
    drop_spare,
    keep_topped_up,
    list_spares,
    template_digest,
    top_up,
)
from tests.conftest import MakeTenant


def _own_template(template: TenantTemplate) -> TenantTemplate:
    marker = f"2999-01-01T00:00:00:{uuid.uuid4().int % 10**6:06d}"
    return dataclasses.replace(
        template, ids=(*template.ids, marker), scripts={**template.scripts, marker: ""}
    )


@pytest.fixture
async def template() -> AsyncIterator[TenantTemplate]:
    """A template no other test shares; its spares are dropped afterwards."""
    own = _own_template(await get_template())
    yield own
    digest = template_digest(own)
    for spare in await list_spares():
        if spare.digest == digest:
            await drop_spare(spare.schema_name)


async def _spares_of(template: TenantTemplate) -> list[str]:
    digest = template_digest(template)
    return [s.schema_name for s in await list_spares() if s.digest == digest]


async def _catalog(schema: str, role: str) -> dict[str, list[tuple[object, ...]]]:
    """What a schema holds, with its own schema and role names written as S and R."""

    def plain(value: object) -> object:
        if isinstance(value, str):
            return value.replace(role, "R").replace(schema, "S")
        return value

    queries = {
        "schema": "SELECT pg_get_userbyid(nspowner), nspacl::text, "
        "obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = $1",
        "relations": "SELECT c.relname, c.relkind, pg_get_userbyid(c.relowner), c.relacl::text "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1",
        "columns": "SELECT table_name, column_name, data_type, is_nullable, column_default, "
        "is_generated, generation_expression FROM information_schema.columns "
        "WHERE table_schema = $1",
        "indexes": "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1",
        "constraints": "SELECT c.conname, c.contype, pg_get_constraintdef(c.oid) "
        "FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
        "WHERE n.nspname = $1",
        "sequences": "SELECT sequencename, pg_get_userbyid(s.relowner), "
        "(SELECT refobjsubid FROM pg_depend d WHERE d.objid = s.oid AND d.deptype = 'a' "
        "AND d.refobjid <> 0 LIMIT 1) FROM pg_sequences q "
        "JOIN pg_class s ON s.relname = q.sequencename "
        "JOIN pg_namespace n ON n.oid = s.relnamespace AND n.nspname = q.schemaname "
        "WHERE q.schemaname = $1",
        "triggers": "SELECT t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t "
        "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND NOT t.tgisinternal",
        "functions": "SELECT p.proname, p.prosrc, p.proconfig::text FROM pg_proc p "
        "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1",
        "default privileges": "SELECT d.defaclobjtype, d.defaclacl::text FROM pg_default_acl d "
        "JOIN pg_namespace n ON n.oid = d.defaclnamespace WHERE n.nspname = $1",
    }
    return {
        name: sorted(tuple(plain(v) for v in row) for row in await engine.fetch(query, schema))
        for name, query in queries.items()
    }


async def _settings(tenant: TenantInfo) -> dict[str, str]:
    async with tenant_transaction(tenant) as transaction:
        rows = await transaction.connection.fetch("SELECT key, value::text FROM settings")
    return {r["key"]: r["value"] for r in rows}


async def test_a_company_made_from_a_spare_is_the_same_as_one_replayed_and_isolated(
    make_tenant: MakeTenant, template: TenantTemplate
) -> None:
    spare = await build_spare(template)
    from_spare = await make_tenant("spare", name="Spare Towing", template=template)
    replayed = await make_tenant("replay", name="Replay Towing", template=template, use_spare=False)
    assert spare not in [s.schema_name for s in await list_spares()]

    spare_catalog = await _catalog(from_spare.schema_name, from_spare.role_name)
    replay_catalog = await _catalog(replayed.schema_name, replayed.role_name)
    assert spare_catalog["relations"]  # tables, indexes, sequences are there
    for part, rows in replay_catalog.items():
        assert spare_catalog[part] == rows, part
    assert spare_catalog["schema"][0][2] is None  # the spare's template comment is gone
    assert not await engine.fetch("SELECT 1 FROM pg_roles WHERE rolname = $1", spare + "_role")

    assert (await _settings(from_spare))["company.name"] == '"Spare Towing"'
    assert (await _settings(replayed))["company.name"] == '"Replay Towing"'
    assert from_spare.applied_migrations == template.ids

    for reader, other in ((replayed, from_spare), (from_spare, replayed)):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            async with tenant_transaction(reader) as transaction:
                await transaction.connection.fetch(f'SELECT * FROM "{other.schema_name}".settings')


async def test_without_a_free_spare_provisioning_replays_the_template(
    make_tenant: MakeTenant, template: TenantTemplate
) -> None:
    assert await _spares_of(template) == []
    first = await make_tenant("first", template=template)
    second = await make_tenant("second", template=template)
    for tenant in (first, second):
        assert (await _settings(tenant))["company.name"]
    assert await _spares_of(template) == []


async def test_top_up_fills_the_pool_and_refills_what_was_handed_over(
    make_tenant: MakeTenant, template: TenantTemplate
) -> None:
    assert await top_up(2, template) == 2
    assert await top_up(2, template) == 0
    first = await make_tenant("first", template=template)
    second = await make_tenant("second", template=template)
    assert await _spares_of(template) == []
    assert {first.schema_name, second.schema_name} == {
        t.schema_name for t in await list_tenants() if t.slug in (first.slug, second.slug)
    }
    assert await top_up(2, template) == 2
    assert len(await _spares_of(template)) == 2


async def _until(condition: Callable[[], Awaitable[bool]], seconds: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_the_app_servers_pool_refills_after_each_hand_over(
    make_tenant: MakeTenant, template: TenantTemplate
) -> None:
    async def full() -> bool:
        return len(await _spares_of(template)) == 2

    refill = asyncio.create_task(keep_topped_up(2, every=3600, template=template))
    try:
        await _until(full)
        first = await make_tenant("first", template=template)
        second = await make_tenant("second", template=template)
        await _until(full)
    finally:
        refill.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refill
    assert first.schema_name not in await _spares_of(template)
    assert (await _settings(second))["company.name"]


async def test_two_companies_created_at_once_never_get_the_same_spare(
    make_tenant: MakeTenant, template: TenantTemplate
) -> None:
    await build_spare(template)
    first, second = await asyncio.gather(
        make_tenant("first", template=template), make_tenant("second", template=template)
    )
    assert first.schema_name != second.schema_name
    assert await _spares_of(template) == []
    for tenant in (first, second):
        assert (await _settings(tenant))["units"] == '"km"'


async def test_spares_of_another_template_are_discarded_and_rebuilt(
    template: TenantTemplate,
) -> None:
    newer = _own_template(template)
    try:
        old = await build_spare(template)
        assert await discard_stale(newer) >= 1
        assert old not in [s.schema_name for s in await list_spares()]
        assert not await engine.fetch("SELECT 1 FROM pg_roles WHERE rolname = $1", old + "_role")
        assert await top_up(1, newer) == 1
        assert len(await _spares_of(newer)) == 1
        assert await discard_stale(newer) == 0
    finally:
        for name in await _spares_of(newer):
            await drop_spare(name)


async def test_spares_are_never_seen_as_companies(
    two_tenants: tuple[TenantInfo, TenantInfo], template: TenantTemplate
) -> None:
    spare = await build_spare(template)
    listed = await list_tenants()
    assert {t.slug for t in two_tenants} <= {t.slug for t in listed}
    assert not [t for t in listed if t.schema_name.startswith(SPARE_PREFIX)]
    report = await migrate_tenants(slugs=[*(t.slug for t in two_tenants), spare])
    assert sorted(r.slug for r in report.results) == sorted(t.slug for t in two_tenants)
    with pytest.raises(NotFound):
        await provisioning.purge_tenant(spare, force=True)
    assert spare in [s.schema_name for s in await list_spares()]


async def test_every_process_captures_the_same_digest_so_spares_outlive_their_builder() -> None:
    # A spare built by one app server is taken by another, or by `patone tenants create`, and
    # `patone migrate` drops only spares whose digest differs from the one it captures.
    first = await capture_template(tenant_migrations())
    second = await capture_template(tenant_migrations())
    shipped = await get_template()
    assert template_digest(first) == template_digest(second) == template_digest(shipped)
