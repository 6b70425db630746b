"""Creating, suspending, deleting, restoring and purging tenants.

A tenant is created in one transaction that also writes its registry row, so a failure at any
step leaves no schema, role or row behind: its schema and role are a ready-made spare renamed
to its name (`tenants/spares.py`), or, when none is free, made by replaying the captured
template (`tenants/migrations.py`).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from patone.core.common.inputs import parse
from patone.core.domain.files import delete_all_files
from patone.core.identity.credentials import Link, invite_first_admin
from patone.core.identity.users import UserInput
from patone.core.runtime.db import DEFAULT_SHARD, engine
from patone.core.runtime.errors import Conflict, NotFound, UserError
from patone.core.runtime.redis import purge_tenant_keys
from patone.tenants.migrations import TenantTemplate, get_template, sql_literal
from patone.tenants.naming import SlugError, quote_ident, role_for, schema_for, validate_slug
from patone.tenants.registry import TenantInfo, announce_change, get_tenant
from patone.tenants.spares import (
    build_script,
    claim_spare,
    hand_over_script,
    is_superuser,
    spare_taken,
)

_DOMAIN = re.compile(r"(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
NAME_MAX = 200


def validate_domain(domain: str) -> str:
    domain = domain.strip().lower().rstrip(".")
    if not _DOMAIN.fullmatch(domain):
        raise UserError("invalid", f"{domain!r} is not a valid domain name", field="domains")
    return domain


def _validate_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise UserError("required", "name is required", field="name")
    if len(name) > NAME_MAX:
        raise UserError("too_long", f"name must be at most {NAME_MAX} characters", field="name")
    return name


def _slug(slug: str) -> str:
    try:
        return validate_slug(slug)
    except SlugError as error:
        raise UserError(error.code, error.message, field="slug") from None


def company_script(slug: str, name: str) -> str:
    """The SQL that writes what is the company's own into its new schema."""
    schema, role = quote_ident(schema_for(slug)), quote_ident(role_for(slug))
    return (
        f"SET LOCAL search_path TO {schema}, ext; SET LOCAL ROLE {role};\n"
        "INSERT INTO settings (key, value) VALUES "
        f"('company.name', to_jsonb({sql_literal(name)}::text));\n"
        "RESET ROLE; SET LOCAL search_path TO ext;"
    )


async def _make_schema(
    connection: asyncpg.Connection,
    slug: str,
    name: str,
    template: TenantTemplate,
    use_spare: bool,
) -> bool:
    """Give the tenant its role, schema and name: a spare renamed, else a replay of the
    template, in one round trip either way. True for a spare."""
    schema, role = schema_for(slug), role_for(slug)
    spare = await claim_spare(connection, template) if use_spare else None
    if spare is not None:
        made = hand_over_script(spare, schema, role)
    else:
        made = build_script(schema, role, template, grant=not await is_superuser(connection))
    await connection.execute(made + "\n" + company_script(slug, name))
    return spare is not None


async def create_tenant(
    slug: str,
    name: str | None = None,
    *,
    plan: str = "standard",
    domains: Sequence[str] = (),
    shard: str = DEFAULT_SHARD,
    branding: dict[str, object] | None = None,
    template: TenantTemplate | None = None,
    reuse_purged_slug: bool = False,
    simulation: bool = False,
    use_spare: bool = True,
) -> TenantInfo:
    """Create a tenant: role, schema, tables, default data and registry row, all or nothing.

    The slug of a purged company is refused unless `reuse_purged_slug`: the new company gets a
    fresh id, which is what tokens, links and jobs of the old one fail to match. `simulation`:
    a company for one run of the simulator, born with status "simulation" (no other process
    works for it, see `TenantInfo.is_simulation`). `use_spare=False` replays the template even
    when a spare is free (the benchmark's baseline)."""
    slug = _slug(slug)
    name = _validate_name(name if name is not None else slug.replace("-", " ").title())
    domains = [validate_domain(d) for d in domains]
    if shard != DEFAULT_SHARD and shard not in engine.shards:
        raise UserError("invalid_choice", f"shard {shard!r} is not configured", field="shard")
    template = template or await get_template()
    if await get_tenant(slug) is not None:
        raise Conflict("taken", f"slug {slug!r} is already taken", field="slug")
    if not reuse_purged_slug and await _was_purged(slug):
        raise Conflict(
            "purged_slug",
            f"slug {slug!r} belonged to a company that was purged; a new company takes it only "
            "when told to reuse the purged slug (--reuse-purged-slug; reusePurgedSlug in the "
            "platform API)",
            field="slug",
        )

    tenant_id = uuid.uuid4()
    now = datetime.now(UTC)
    try:
        async with engine.acquire(shard) as shard_conn, shard_conn.transaction():
            took_spare = await _make_schema(shard_conn, slug, name, template, use_spare)
            async with _registry_connection(shard_conn, shard) as platform:
                await platform.execute(
                    """
                    INSERT INTO platform.tenants
                        (id, slug, name, schema_name, role_name, status, status_reason, plan,
                         branding, shard, applied_migrations, created_at, updated_at)
                    VALUES ($1, $2, $3, $4, $5, $11, '', $6, $7::jsonb, $8, $9, $10, $10)
                    """,
                    tenant_id,
                    slug,
                    name,
                    schema_for(slug),
                    role_for(slug),
                    plan,
                    json.dumps(branding or {}),
                    shard,
                    list(template.ids),
                    now,
                    "simulation" if simulation else "active",
                )
                if domains:
                    await platform.executemany(
                        "INSERT INTO platform.tenant_domains (tenant, domain, is_primary, "
                        "created_at) VALUES ($1, $2, $3, $4)",
                        [(tenant_id, d, i == 0, now) for i, d in enumerate(domains)],
                    )
    except asyncpg.UniqueViolationError as error:
        if "domain" in (error.constraint_name or ""):
            raise Conflict("taken", "a domain is already in use", field="domains") from None
        raise Conflict("taken", f"slug {slug!r} is already taken", field="slug") from None
    except asyncpg.DuplicateObjectError:
        raise Conflict(
            "taken", f"slug {slug!r} is already taken (its role exists)", field="slug"
        ) from None
    except asyncpg.DuplicateSchemaError:
        raise Conflict(
            "taken", f"slug {slug!r} is already taken (its schema exists)", field="slug"
        ) from None
    except asyncpg.ForeignKeyViolationError:
        raise UserError("invalid_choice", f"plan {plan!r} does not exist", field="plan") from None
    if took_spare:
        spare_taken()
    await announce_change(slug)
    created = await get_tenant(slug)
    assert created is not None
    return created


async def _was_purged(slug: str) -> bool:
    return bool(await engine.fetch("SELECT 1 FROM platform.purged_slugs WHERE slug = $1", slug))


@dataclass(frozen=True)
class NewTenant:
    tenant: TenantInfo
    admin: dict[str, Any]
    link: Link  # the first admin's one-time set-up link


async def create_tenant_with_admin(
    slug: str,
    name: str | None = None,
    *,
    admin_email: str,
    admin_name: str,
    base_url: str,
    **options: Any,
) -> NewTenant:
    """Create a tenant (`create_tenant`, same `options`) and its first admin, who gets a
    one-time set-up link under `base_url` (no password ships). The admin's details are
    checked before anything is created."""
    parse(UserInput, {"email": admin_email, "name": admin_name, "role": "admin"})
    tenant = await create_tenant(slug, name, **options)
    invitation = await invite_first_admin(
        tenant, email=admin_email, name=admin_name, base_url=base_url
    )
    return NewTenant(tenant, invitation.user, invitation.link)


@asynccontextmanager
async def _registry_connection(
    shard_conn: asyncpg.Connection, shard: str
) -> AsyncIterator[asyncpg.Connection]:
    """Where the registry row is written: the shard's own transaction on the default shard.

    On another shard the registry commits first, just before the shard's DDL; should that last
    commit fail, the row points at nothing until `purge` (which tolerates a missing schema).
    """
    if shard == DEFAULT_SHARD:
        yield shard_conn
        return
    async with engine.acquire(DEFAULT_SHARD) as conn, conn.transaction():
        yield conn


async def _require(slug: str) -> TenantInfo:
    tenant = await get_tenant(slug)
    if tenant is None:
        raise NotFound("not_found", f"tenant {slug!r} does not exist", field="slug")
    return tenant


async def _set_status(slug: str, status: str, reason: str, **extra: object) -> TenantInfo:
    sets = ", ".join(f"{column} = ${i}" for i, column in enumerate(extra, start=4))
    await engine.execute(
        f"UPDATE platform.tenants SET status = $2, status_reason = $3, updated_at = now()"
        f"{', ' + sets if sets else ''} WHERE slug = $1",
        slug,
        status,
        reason,
        *extra.values(),
    )
    await announce_change(slug)
    updated = await get_tenant(slug)
    assert updated is not None
    return updated


async def suspend_tenant(slug: str, reason: str) -> TenantInfo:
    """Refuse the tenant's requests with 403 and `reason` until resumed."""
    tenant = await _require(slug)
    if tenant.status == "deleted":
        raise UserError("deleted", f"tenant {slug!r} is deleted; restore it first", field="slug")
    reason = reason.strip()
    if not reason:
        raise UserError("required", "a reason is required to suspend a tenant", field="reason")
    return await _set_status(slug, "suspended", reason)


async def resume_tenant(slug: str) -> TenantInfo:
    tenant = await _require(slug)
    if tenant.status != "suspended":
        raise UserError("not_suspended", f"tenant {slug!r} is {tenant.status}", field="slug")
    return await _set_status(slug, "active", "")


async def change_plan(slug: str, plan: str) -> TenantInfo:
    """Move a tenant to another plan of the catalogue; its limits follow the new plan."""
    tenant = await _require(slug)
    if tenant.status == "deleted":
        raise UserError("deleted", f"tenant {slug!r} is deleted; restore it first", field="slug")
    try:
        await engine.execute(
            "UPDATE platform.tenants SET plan = $2, updated_at = now() WHERE slug = $1", slug, plan
        )
    except asyncpg.ForeignKeyViolationError:
        raise UserError("invalid_choice", f"plan {plan!r} does not exist", field="plan") from None
    await announce_change(slug)
    updated = await get_tenant(slug)
    assert updated is not None
    return updated


async def delete_tenant(slug: str, grace_days: int = 30, reason: str = "") -> TenantInfo:
    """Soft-delete: the tenant stops resolving; data stays until purged after the grace period."""
    tenant = await _require(slug)
    if tenant.status == "deleted":
        raise UserError("deleted", f"tenant {slug!r} is already deleted", field="slug")
    now = datetime.now(UTC)
    return await _set_status(
        slug,
        "deleted",
        reason or "deleted",
        deleted_at=now,
        purge_after=now + timedelta(days=grace_days),
    )


async def restore_tenant(slug: str) -> TenantInfo:
    """Undo a soft delete within the grace period."""
    tenant = await _require(slug)
    if tenant.status != "deleted":
        raise UserError("not_deleted", f"tenant {slug!r} is not deleted", field="slug")
    return await _set_status(slug, "active", "", deleted_at=None, purge_after=None)


async def _schema_exists(tenant: TenantInfo) -> bool:
    async with engine.acquire(tenant.shard) as conn:
        found = await conn.fetchval(
            "SELECT 1 FROM pg_namespace WHERE nspname = $1", tenant.schema_name
        )
    return found is not None


async def purge_tenant(slug: str, *, force: bool = False) -> None:
    """Drop a deleted tenant's files, schema, role, registry row and Redis keys, for good, and
    record its slug as purged (see `create_tenant`).

    Only deleted tenants past their grace period are purged, unless `force`. Re-running a purge
    that failed half-way finishes it. Keys go first (Redis being away stops the purge while
    it can still be run again) and once more last, when the registry row is gone: work that
    still held the tenant (a job, a sweep) may have written some in between, and finds it
    unresolvable from then on.
    """
    tenant = await _require(slug)
    if tenant.status != "deleted":
        raise UserError(
            "not_deleted", f"tenant {slug!r} must be deleted before it is purged", field="slug"
        )
    if not force and tenant.purge_after and tenant.purge_after > datetime.now(UTC):
        raise UserError(
            "grace_period",
            f"tenant {slug!r} can be restored until {tenant.purge_after:%Y-%m-%d %H:%M} UTC; "
            "use --force to purge now",
            field="slug",
        )
    if await _schema_exists(tenant):  # else its storage settings went with it: nothing stored
        await delete_all_files(tenant)
    await purge_tenant_keys(slug)
    schema, role = quote_ident(tenant.schema_name), quote_ident(tenant.role_name)
    async with engine.acquire(tenant.shard) as conn, conn.transaction():
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE; DROP ROLE IF EXISTS {role}")
        async with _registry_connection(conn, tenant.shard) as platform:
            await platform.execute("DELETE FROM platform.tenants WHERE id = $1", tenant.id)
            await platform.execute(
                "INSERT INTO platform.purged_slugs (slug, tenant_id, purged_at) "
                "VALUES ($1, $2, now()) "
                "ON CONFLICT (slug) DO UPDATE SET tenant_id = $2, purged_at = now()",
                slug,
                tenant.id,
            )
    await announce_change(slug)
    await purge_tenant_keys(slug)
