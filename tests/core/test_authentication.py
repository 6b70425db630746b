"""Turning a token into an actor: kinds accepted, revocation first, partners by scope."""

from __future__ import annotations

import pytest

from patone.core import authentication, drivers, revocation, users
from patone.core.permissions import SYSTEM, Actor
from patone.core.ratelimits import RateLimited
from patone.core.tokens import InvalidToken, Kind, issue_token
from patone.tenants.registry import TenantInfo

SECRET = "authentication-test-secret"


async def _limited() -> None:
    raise RateLimited(30)


async def test_staff_and_partner_tokens_become_actors_of_their_own_company(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    user = await users.create_user(
        acme, SYSTEM, {"email": "m@acme.example", "name": "M", "role": "manager"}
    )
    staff = issue_token(SECRET, kind=Kind.staff, subject=str(user["id"]), tenant=acme.slug)
    actor, claims = await authentication.authenticate(SECRET, acme, staff)
    assert (actor.kind, actor.id, actor.role) == ("user", str(user["id"]), "manager")
    assert authentication.caller(claims) == f"user:{user['id']}"
    partner = issue_token(
        SECRET, kind=Kind.partner, subject="pc_1", tenant=bolt.slug, scopes=["requests:write"]
    )
    actor, claims = await authentication.authenticate(SECRET, bolt, partner)
    assert actor.kind == "partner" and actor.permissions == {
        "requests.create",
        "requests.update",
        "requests.cancel",
    }
    assert authentication.caller(claims) == "partner:pc_1"
    with pytest.raises(InvalidToken):
        await authentication.authenticate(SECRET, acme, partner)
    with pytest.raises(InvalidToken, match="no longer exists"):  # no such user at Bolt
        await authentication.authenticate(
            SECRET,
            bolt,
            issue_token(SECRET, kind=Kind.staff, subject=str(user["id"]), tenant=bolt.slug),
        )


async def test_customers_hold_no_permission_and_revocation_is_reported_before_the_rate_limit(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    customer = issue_token(SECRET, kind=Kind.customer, subject="5", tenant=acme.slug)
    actor, _ = await authentication.authenticate(SECRET, acme, customer)
    assert (actor.kind, actor.id, actor.permissions) == ("customer", "5", frozenset())
    with pytest.raises(InvalidToken):  # Acme's customer is nobody at Bolt
        await authentication.authenticate(SECRET, bolt, customer)
    nameless = issue_token(SECRET, kind=Kind.customer, subject="ann", tenant=acme.slug)
    with pytest.raises(InvalidToken, match="names no customer"):
        await authentication.authenticate(SECRET, acme, nameless)
    operator = issue_token(SECRET, kind=Kind.operator, subject="1", tenant=None)
    with pytest.raises(InvalidToken):
        await authentication.authenticate(SECRET, acme, operator)
    token = issue_token(SECRET, kind=Kind.partner, subject="pc_2", tenant=acme.slug)
    claims = authentication.verify(SECRET, acme, token)
    with pytest.raises(RateLimited):
        await authentication.actor_for(acme, claims, _limited())
    await revocation.revoke_token(acme.slug, claims.token_id, claims.expires_at)
    with pytest.raises(revocation.RevokedToken):
        await authentication.actor_for(acme, claims, _limited())
    same_client_elsewhere = issue_token(SECRET, kind=Kind.partner, subject="pc_2", tenant=bolt.slug)
    actor, _ = await authentication.authenticate(SECRET, bolt, same_client_elsewhere)
    assert actor.id == "pc_2"


async def test_cached_actors_follow_changes_to_users_roles_and_drivers_at_once(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    made: dict[str, tuple[int, str]] = {}
    for tenant, role in ((acme, "dispatcher"), (bolt, "manager")):
        user = await users.create_user(
            tenant, SYSTEM, {"email": "d@x.example", "name": "D", "role": role}
        )
        token = issue_token(SECRET, kind=Kind.staff, subject=str(user["id"]), tenant=tenant.slug)
        made[tenant.slug] = (user["id"], token)
    acme_id, acme_token = made[acme.slug]

    async def acting(tenant: TenantInfo) -> Actor:
        return (await authentication.authenticate(SECRET, tenant, made[tenant.slug][1]))[0]

    first = await acting(acme)
    assert first.role == "dispatcher" and await acting(acme) == first  # the cached one
    bolt_manager = await acting(bolt)
    await users.update_user(acme, SYSTEM, acme_id, {"role": "manager"})
    assert (await acting(acme)).role == "manager"

    granted = sorted((await acting(acme)).permissions - {"reports.view"})
    await users.set_role_permissions(acme, SYSTEM, "manager", granted)
    assert "reports.view" not in (await acting(acme)).permissions
    assert await acting(bolt) == bolt_manager  # Bolt's managers keep what they had

    driver = await drivers.create_driver(
        acme, SYSTEM, {"name": "D", "phone": "+14155550100", "user_id": acme_id}
    )
    assert (await acting(acme)).driver_id == driver["id"]
    await drivers.archive_driver(acme, SYSTEM, driver["id"])
    assert (await acting(acme)).driver_id is None

    await users.update_user(acme, SYSTEM, acme_id, {"active": False})
    with pytest.raises(InvalidToken):
        await authentication.authenticate(SECRET, acme, acme_token)
    assert await acting(bolt) == bolt_manager
