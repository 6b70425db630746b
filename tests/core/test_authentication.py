"""Turning a token into an actor: kinds accepted, revocation first, partners by scope."""

from __future__ import annotations

import pytest

from patone.core import authentication, revocation, users
from patone.core.permissions import SYSTEM
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


async def test_other_kinds_are_refused_and_revocation_is_reported_before_the_rate_limit(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    customer = issue_token(SECRET, kind=Kind.customer, subject="5", tenant=acme.slug)
    with pytest.raises(InvalidToken, match="customer tokens"):
        await authentication.authenticate(SECRET, acme, customer)
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
