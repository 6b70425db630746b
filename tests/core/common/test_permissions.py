"""The role x permission matrix, read from docs/permissions.md and checked against everything."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from patone.core.common.permissions import (
    DEFAULT_GRANTS,
    PERMISSIONS,
    ROLES,
    SYSTEM,
    Actor,
    PermissionDenied,
    matrix_markdown,
)
from patone.core.domain import customers, drivers, service_requests, service_types
from patone.core.domain.company import update_settings
from patone.core.identity import users
from patone.tenants.registry import TenantInfo
from tests.conftest import actor_for

DOC = Path(__file__).parents[3] / "docs" / "permissions.md"


def documented_matrix() -> dict[str, set[str]]:
    """role -> permissions, as docs/permissions.md says."""
    lines = [line for line in DOC.read_text().splitlines() if line.startswith("| `")]
    header = next(line for line in DOC.read_text().splitlines() if line.startswith("| permission"))
    titles = [cell.strip() for cell in header.strip("|").split("|")][2:]
    names = {title: name for name, title in ROLES.items()}
    grants: dict[str, set[str]] = {names[t]: set() for t in titles}
    for line in lines:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        permission = re.sub(r"`", "", cells[0])
        for title, mark in zip(titles, cells[2:], strict=True):
            if mark == "yes":
                grants[names[title]].add(permission)
    return grants


def test_the_document_is_the_code() -> None:
    assert matrix_markdown() in DOC.read_text()
    assert documented_matrix() == {role: set(g) for role, g in DEFAULT_GRANTS.items()}


async def test_a_new_company_starts_with_the_documented_roles(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    for tenant in two_tenants:
        roles = {r.name: set(r.permissions) for r in await users.list_roles(tenant)}
        assert roles == documented_matrix()


Call = Callable[[TenantInfo, Actor, dict[str, Any]], Awaitable[Any]]


async def _world(tenant: TenantInfo) -> dict[str, Any]:
    customer = await customers.create_customer(tenant, SYSTEM, {"name": "Kim"})
    driver = await drivers.create_driver(tenant, SYSTEM, {"name": "Lee"})
    await drivers.update_driver(tenant, SYSTEM, driver.id, {"status": "available"})
    request = await service_requests.create_request(
        tenant,
        SYSTEM,
        {"customer_id": customer.id, "service_type": "lockout", "pickup": {"lat": 1, "lng": 1}},
    )
    return {"customer": customer.id, "driver": driver.id, "request": request.id}


# Each mutation a staff member can attempt, and the permission that gates it.
MUTATIONS: dict[str, tuple[str, Call]] = {
    "createCustomer": (
        "customers.manage",
        lambda t, a, w: customers.create_customer(t, a, {"name": "New"}),
    ),
    "updateCustomer": (
        "customers.manage",
        lambda t, a, w: customers.update_customer(t, a, w["customer"], {"notes": "vip"}),
    ),
    "createServiceRequest": (
        "requests.create",
        lambda t, a, w: service_requests.create_request(
            t,
            a,
            {
                "customer_id": w["customer"],
                "service_type": "lockout",
                "pickup": {"lat": 1, "lng": 1},
            },
        ),
    ),
    "updateServiceRequest": (
        "requests.update",
        lambda t, a, w: service_requests.update_request(t, a, w["request"], {"notes": "x"}),
    ),
    "assignDriver": (
        "requests.assign",
        lambda t, a, w: service_requests.assign_driver(t, a, w["request"], w["driver"]),
    ),
    "cancelServiceRequest": (
        "requests.cancel",
        lambda t, a, w: service_requests.transition(
            t, a, w["request"], "cancelled", reason_code="customer_cancelled"
        ),
    ),
    "createDriver": (
        "drivers.manage",
        lambda t, a, w: drivers.create_driver(t, a, {"name": "New driver"}),
    ),
    "updateServiceType": (
        "service_types.manage",
        lambda t, a, w: service_types.update_service_type(t, a, "lockout", {"base_price": 7000}),
    ),
    "createUser": (
        "users.manage",
        lambda t, a, w: users.create_user(
            t, a, {"email": f"n{id(a)}@example.com", "name": "N", "role": "dispatcher"}
        ),
    ),
    "setRolePermissions": (
        "roles.manage",
        lambda t, a, w: users.set_role_permissions(t, a, "dispatcher", ["requests.view"]),
    ),
    "updateSettings": (
        "settings.manage",
        lambda t, a, w: update_settings(t, a, {"currency": "EUR"}),
    ),
}


@pytest.mark.parametrize("role", list(ROLES))
@pytest.mark.parametrize("mutation", list(MUTATIONS))
async def test_each_role_against_each_mutation(
    two_tenants: tuple[TenantInfo, TenantInfo], role: str, mutation: str
) -> None:
    acme, _ = two_tenants
    permission, call = MUTATIONS[mutation]
    world = await _world(acme)
    actor = actor_for(role)
    if role == "driver":  # a driver acts on the job assigned to them; others' are not theirs
        await service_requests.assign_driver(acme, SYSTEM, world["request"], world["driver"])
        actor = actor_for(role, driver_id=world["driver"])
    if permission in documented_matrix()[role]:
        assert await call(acme, actor, world) is not None
    else:
        with pytest.raises(PermissionDenied) as refused:
            await call(acme, actor, world)
        assert refused.value.status == 403 and permission in refused.value.message


def test_every_permission_is_described() -> None:
    assert all(PERMISSIONS.values())
    assert set().union(*DEFAULT_GRANTS.values()) <= set(PERMISSIONS)
