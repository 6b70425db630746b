"""Staff users and roles: invite, change, deactivate; edit a role's permissions; who is acting."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from pydantic import Field

from patone.core.common.activity import audited_update, record
from patone.core.common.inputs import Email, Input, Name, parse
from patone.core.common.permissions import Actor, require, validate_grants
from patone.core.common.rows import fetch_records, insert_row, record_by_id
from patone.core.identity.refresh_tokens import revoke_all
from patone.core.identity.tokens import Kind
from patone.core.runtime.clock import now
from patone.core.runtime.db import engine
from patone.core.runtime.errors import Conflict, NotFound, UserError
from patone.core.runtime.redis import get_redis, tenant_key
from patone.core.tables.identity import RoleRow, UserRow
from patone.tenants.isolation import TenantRef, tenant_transaction


class UserInput(Input):
    email: Email
    name: Name
    role: str = Field(min_length=1, max_length=40)


class UserChanges(Input):
    name: Name | None = None
    role: str | None = Field(None, min_length=1, max_length=40)
    active: bool | None = None
    # Set by an admin: the user must choose a new password at their next sign-in.
    must_change_password: bool | None = None


async def _user(user_id: int) -> UserRow:
    return await record_by_id(UserRow, user_id, what="user", field="user_id")


async def _require_role(role: str) -> None:
    if not await engine.fetch("SELECT 1 FROM roles WHERE name = $1", role):
        raise UserError("invalid_choice", f"role {role!r} does not exist", "role")


async def get_user(tenant: TenantRef, actor: Actor, user_id: int) -> UserRow:
    """One staff member, for those who may list them."""
    require(actor, "users.manage")
    async with tenant_transaction(tenant):
        return await record_by_id(UserRow, user_id, what="user", field="id")


async def list_users(tenant: TenantRef, actor: Actor) -> list[UserRow]:
    require(actor, "users.manage")
    async with tenant_transaction(tenant):
        return await fetch_records(UserRow, f"SELECT {UserRow.columns()} FROM users ORDER BY id")


async def create_user(tenant: TenantRef, actor: Actor, data: Any) -> UserRow:
    """Add a staff member, with no password: `credentials.invite_user` also gives them a
    set-up link."""
    require(actor, "users.manage")
    user = parse(UserInput, data)
    async with tenant_transaction(tenant):
        await _require_role(user.role)
        if await engine.fetch("SELECT 1 FROM users WHERE lower(email) = lower($1)", user.email):
            raise Conflict("taken", f"{user.email} already has an account", "email")
        at = now()
        # Stored lower-case: one account per address, whatever case people type it in.
        user_id = await insert_row(
            "users",
            {
                **user.model_dump(),
                "email": user.email.lower(),
                "active": True,
                "created_at": at,
                "updated_at": at,
            },
        )
        created = await _user(user_id)
        await record(actor, "user", user_id, "user.created", None, created)
    return created


async def update_user(tenant: TenantRef, actor: Actor, user_id: int, data: Any) -> UserRow:
    require(actor, "users.manage")
    changes = parse(UserChanges, data).model_dump(exclude_unset=True)
    async with tenant_transaction(tenant):
        if changes.get("role"):
            await _require_role(changes["role"])
        updated = await audited_update(
            actor, "user", "users", user_id, {**changes, "updated_at": now()}, "user.updated", _user
        )
    await actors_changed(tenant)
    if changes.get("active") is False:  # their tokens and open sockets stop working at once
        await revoke_all(tenant, actor, Kind.staff, str(user_id))
    return updated


async def list_roles(tenant: TenantRef) -> list[RoleRow]:
    async with tenant_transaction(tenant):
        return await fetch_records(RoleRow, f"SELECT {RoleRow.columns()} FROM roles ORDER BY id")


async def set_role_permissions(
    tenant: TenantRef, actor: Actor, role: str, permissions: list[str]
) -> RoleRow:
    """Replace what a role may do in this company."""
    require(actor, "roles.manage")
    granted = validate_grants(permissions)
    if role == "admin" and "roles.manage" not in granted:
        raise UserError("would_lock_out", "admins must keep roles.manage", "permissions")
    async with tenant_transaction(tenant):
        found = await fetch_records(
            RoleRow, f"SELECT {RoleRow.columns()} FROM roles WHERE name = $1", role
        )
        if not found:
            raise NotFound("not_found", f"role {role!r} does not exist", "role")
        before = found[0]
        await engine.execute(
            "UPDATE roles SET permissions = $2, updated_at = now() WHERE name = $1", role, granted
        )
        after = before.replace(permissions=granted)
        await record(actor, "role", role, "role.permissions_changed", before, after)
    await actors_changed(tenant)
    return after


async def actor_for_user(tenant: TenantRef, user_id: int) -> Actor:
    """The acting identity of a staff user: their role's current permissions, and their
    driver record if they drive. An inactive or unknown user cannot act."""
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "SELECT u.id, u.role, u.active, r.permissions, "
            '(SELECT d.id FROM drivers d WHERE d."user" = u.id AND d.archived_at IS NULL '
            " ORDER BY d.id LIMIT 1) AS driver_id "
            "FROM users u JOIN roles r ON r.name = u.role WHERE u.id = $1",
            user_id,
        )
    if not rows or not rows[0]["active"]:
        raise NotFound("not_found", "no such active user", "user_id")
    row = rows[0]
    return Actor(
        kind="user",
        id=str(row["id"]),
        role=row["role"],
        permissions=frozenset(row["permissions"]),
        driver_id=row["driver_id"],
    )


# Acting identities of staff users, kept per process for API requests: a token's role read
# from Postgres on every request was most of what authentication cost (bench/auth.py). Each
# entry carries the tenant's actors version (a Redis counter) it was read under; a change to a
# user, a role or a driver's link bumps the counter after its commit, so the next request of
# every process reads the user afresh. The counter is read in the same Redis round trip as the
# token's revocation (`authentication`).
ACTOR_CACHE_SIZE = 10_000
_actors: OrderedDict[tuple[str, str, int], tuple[str, Actor]] = OrderedDict()


def actors_version_key(slug: str) -> str:
    return tenant_key(slug, "actors_version")


async def actors_changed(tenant: TenantRef) -> None:
    """Call after committing a change to a user, a role or a driver's user: every process
    stops using the company's cached actors."""
    await get_redis().incr(actors_version_key(tenant.slug))


async def cached_actor(tenant: TenantRef, user_id: int, version: str | bytes | None) -> Actor:
    """`actor_for_user`, from this process's cache when it was read under `version` (the
    tenant's current actors version; None, before any change was counted, is a version too)."""
    stamp = version.decode() if isinstance(version, bytes) else str(version)
    key = (tenant.slug, str(tenant.id), user_id)  # by id too: a purged slug's users are others
    found = _actors.get(key)
    if found is not None and found[0] == stamp:
        _actors.move_to_end(key)
        return found[1]
    actor = await actor_for_user(tenant, user_id)
    _actors[key] = (stamp, actor)
    if len(_actors) > ACTOR_CACHE_SIZE:
        _actors.popitem(last=False)
    return actor


async def own_profile(tenant: TenantRef, actor: Actor) -> UserRow:
    """The signed-in user's own record (no permission needed to see oneself)."""
    if actor.kind != "user":
        raise NotFound("not_found", "only staff users have a profile", "user_id")
    async with tenant_transaction(tenant):
        return await _user(int(actor.id))
