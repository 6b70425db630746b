"""Turning a token into an actor: kinds accepted, revocation first, partners by scope."""

from __future__ import annotations

import pytest

from patone.core.common.permissions import SYSTEM, Actor
from patone.core.domain import drivers
from patone.core.identity import api_clients, authentication, revocation, users
from patone.core.identity.ratelimits import RateLimited
from patone.core.identity.tokens import InvalidToken, Kind, issue_token
from patone.tenants.registry import TenantInfo
from tests.conftest import actor_for
from tests.support import purge_and_take_slug

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
    staff = issue_token(SECRET, kind=Kind.staff, subject=str(user.id), tenant=acme)
    actor, claims = await authentication.authenticate(SECRET, acme, staff)
    assert (actor.kind, actor.id, actor.role) == ("user", str(user.id), "manager")
    assert authentication.caller(claims) == f"user:{user.id}"
    client, _ = await api_clients.create_client(
        bolt, actor_for("admin"), name="Partner", scopes=["requests:write"]
    )
    partner = issue_token(
        SECRET,
        kind=Kind.partner,
        subject=client.client_id,
        tenant=bolt,
        scopes=["requests:write"],
    )
    actor, claims = await authentication.authenticate(SECRET, bolt, partner)
    assert actor.kind == "partner" and actor.permissions == {
        "requests.create",
        "requests.update",
        "requests.cancel",
    }
    assert authentication.caller(claims) == f"partner:{client.client_id}"
    with pytest.raises(InvalidToken):
        await authentication.authenticate(SECRET, acme, partner)
    with pytest.raises(InvalidToken, match="no longer exists"):  # no such user at Bolt
        await authentication.authenticate(
            SECRET,
            bolt,
            issue_token(SECRET, kind=Kind.staff, subject=str(user.id), tenant=bolt),
        )


async def test_customers_hold_no_permission_and_revocation_is_reported_before_the_rate_limit(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    customer = issue_token(SECRET, kind=Kind.customer, subject="5", tenant=acme)
    actor, _ = await authentication.authenticate(SECRET, acme, customer)
    assert (actor.kind, actor.id, actor.permissions) == ("customer", "5", frozenset())
    with pytest.raises(InvalidToken):  # Acme's customer is nobody at Bolt
        await authentication.authenticate(SECRET, bolt, customer)
    nameless = issue_token(SECRET, kind=Kind.customer, subject="ann", tenant=acme)
    with pytest.raises(InvalidToken, match="names no customer"):
        await authentication.authenticate(SECRET, acme, nameless)
    operator = issue_token(SECRET, kind=Kind.operator, subject="1", tenant=None)
    with pytest.raises(InvalidToken):
        await authentication.authenticate(SECRET, acme, operator)
    acme_client, _ = await api_clients.create_client(
        acme, actor_for("admin"), name="Partner", scopes=["requests:read"]
    )
    token = issue_token(SECRET, kind=Kind.partner, subject=acme_client.client_id, tenant=acme)
    claims = authentication.verify(SECRET, acme, token)
    with pytest.raises(RateLimited):
        await authentication.actor_for(acme, claims, _limited())
    await revocation.revoke_token(acme.slug, claims.token_id, claims.expires_at)
    with pytest.raises(revocation.RevokedToken):
        await authentication.actor_for(acme, claims, _limited())
    same_client_elsewhere = issue_token(
        SECRET, kind=Kind.partner, subject=acme_client.client_id, tenant=bolt
    )
    with pytest.raises(InvalidToken, match="client no longer exists"):  # not Bolt's client
        await authentication.authenticate(SECRET, bolt, same_client_elsewhere)


async def test_cached_actors_follow_changes_to_users_roles_and_drivers_at_once(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    made: dict[str, tuple[int, str]] = {}
    for tenant, role in ((acme, "dispatcher"), (bolt, "manager")):
        user = await users.create_user(
            tenant, SYSTEM, {"email": "d@x.example", "name": "D", "role": role}
        )
        token = issue_token(SECRET, kind=Kind.staff, subject=str(user.id), tenant=tenant)
        made[tenant.slug] = (user.id, token)
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
    assert (await acting(acme)).driver_id == driver.id
    await drivers.archive_driver(acme, SYSTEM, driver.id)
    assert (await acting(acme)).driver_id is None

    await users.update_user(acme, SYSTEM, acme_id, {"active": False})
    with pytest.raises(InvalidToken):
        await authentication.authenticate(SECRET, acme, acme_token)
    assert await acting(bolt) == bolt_manager


async def test_a_purged_companys_tokens_are_refused_by_the_company_that_takes_its_slug(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    lima, other = two_tenants
    admin = await users.create_user(
        lima, SYSTEM, {"email": "old@lima.example", "name": "Old", "role": "admin"}
    )
    client, _ = await api_clients.create_client(
        lima, actor_for("admin"), name="Old partner", scopes=["requests:read"]
    )
    old_tokens = {
        "staff": issue_token(SECRET, kind=Kind.staff, subject=str(admin.id), tenant=lima),
        "partner": issue_token(SECRET, kind=Kind.partner, subject=client.client_id, tenant=lima),
        "customer": issue_token(SECRET, kind=Kind.customer, subject="1", tenant=lima),
    }
    for token in old_tokens.values():
        await authentication.authenticate(SECRET, lima, token)  # good while Lima lives

    new = await purge_and_take_slug(lima)
    assert new.id != lima.id
    new_admin = await users.create_user(
        new, SYSTEM, {"email": "new@lima.example", "name": "New", "role": "admin"}
    )
    assert new_admin.id == admin.id  # the same user id: only the company tells them apart
    for kind, token in old_tokens.items():
        with pytest.raises(InvalidToken, match="another company"):
            await authentication.authenticate(SECRET, new, token)
        assert kind  # every kind refused
    mine = issue_token(SECRET, kind=Kind.staff, subject=str(new_admin.id), tenant=new)
    actor, _ = await authentication.authenticate(SECRET, new, mine)
    assert actor.role == "admin"
    with pytest.raises(InvalidToken):
        await authentication.authenticate(SECRET, other, mine)


async def test_a_partner_token_is_refused_once_its_client_no_longer_exists(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    client, _ = await api_clients.create_client(
        acme, actor_for("admin"), name="Partner", scopes=["requests:read"]
    )
    token = issue_token(SECRET, kind=Kind.partner, subject=client.client_id, tenant=acme)
    actor, _ = await authentication.authenticate(SECRET, acme, token)
    assert actor.id == client.client_id
    invented = issue_token(SECRET, kind=Kind.partner, subject="pc_nobody", tenant=acme)
    with pytest.raises(InvalidToken, match="client no longer exists"):
        await authentication.authenticate(SECRET, acme, invented)
    elsewhere = issue_token(SECRET, kind=Kind.partner, subject=client.client_id, tenant=bolt)
    with pytest.raises(InvalidToken, match="client no longer exists"):
        await authentication.authenticate(SECRET, bolt, elsewhere)
