"""Staff users and per-tenant roles, and the identity an acting user gets."""

from __future__ import annotations

import pytest

from patone.core.common.permissions import SYSTEM
from patone.core.domain import drivers
from patone.core.identity import users
from patone.core.runtime.errors import Conflict, NotFound, UserError, ValidationFailed
from patone.tenants.registry import TenantInfo
from tests.conftest import actor_for

ADMIN = actor_for("admin")


async def test_users_roles_and_acting_identity(two_tenants: tuple[TenantInfo, TenantInfo]) -> None:
    acme, bolt = two_tenants
    user = await users.create_user(
        acme, ADMIN, {"email": "Sam@Example.COM", "name": "Sam", "role": "dispatcher"}
    )
    assert user.email == "sam@example.com" and user.active
    actor = await users.actor_for_user(acme, user.id)
    assert actor.role == "dispatcher" and actor.can("requests.assign")
    assert not actor.can("reports.revenue")
    # An admin grants revenue figures to dispatchers in acme only.
    await users.set_role_permissions(
        acme, ADMIN, "dispatcher", [*actor.permissions, "reports.revenue"]
    )
    assert (await users.actor_for_user(acme, user.id)).can("reports.revenue")
    bolt_roles = {r.name: r.permissions for r in await users.list_roles(bolt)}
    assert "reports.revenue" not in bolt_roles["dispatcher"]
    with pytest.raises(NotFound):
        await users.actor_for_user(bolt, user.id)
    await users.update_user(acme, ADMIN, user.id, {"active": False})
    with pytest.raises(NotFound):
        await users.actor_for_user(acme, user.id)


async def test_a_driving_user_acts_as_their_driver(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, _ = two_tenants
    user = await users.create_user(
        acme, ADMIN, {"email": "d@example.com", "name": "D", "role": "driver"}
    )
    driver = await drivers.create_driver(acme, SYSTEM, {"name": "D", "user_id": user.id})
    actor = await users.actor_for_user(acme, user.id)
    assert actor.driver_id == driver.id and actor.can("requests.transition_assigned")


async def test_bad_user_and_role_input(two_tenants: tuple[TenantInfo, TenantInfo]) -> None:
    acme, _ = two_tenants
    await users.create_user(acme, ADMIN, {"email": "a@example.com", "name": "A", "role": "admin"})
    with pytest.raises(Conflict):
        await users.create_user(
            acme, ADMIN, {"email": "A@example.com", "name": "A2", "role": "admin"}
        )
    with pytest.raises(UserError) as role:
        await users.create_user(acme, ADMIN, {"email": "b@example.com", "name": "B", "role": "ceo"})
    assert role.value.field == "role"
    with pytest.raises(ValidationFailed) as email:
        await users.create_user(
            acme, ADMIN, {"email": "not-an-email", "name": "B", "role": "admin"}
        )
    assert email.value.field == "email"
    with pytest.raises(UserError) as unknown:
        await users.set_role_permissions(acme, ADMIN, "driver", ["fly.plane"])
    assert unknown.value.field == "permissions"
    with pytest.raises(UserError) as lockout:
        await users.set_role_permissions(acme, ADMIN, "admin", ["requests.view"])
    assert lockout.value.code == "would_lock_out"
