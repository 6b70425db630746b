"""Who is calling a tenant's API: a genuine, unrevoked access token turned into an `Actor`.

The signature check uses the in-memory keyring and revocation is one Redis MGET; a staff
user's current role comes from the process's actor cache, which the same MGET tells to read the
tenant again after any change to its users, roles or drivers (so a changed role or a
deactivated user takes effect at once), a partner's permissions come from its token's scopes.
The Redis check (and the role read, when not cached) and whatever else the caller needs per
request (the rate limit) run concurrently, so a request waits for the slowest of them, not
their sum.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable

from patone.core.common.permissions import Actor
from patone.core.identity import api_clients, revocation
from patone.core.identity.tokens import TENANT_AUDIENCE, Claims, InvalidToken, Kind, verify_token
from patone.core.identity.users import actors_version_key, cached_actor
from patone.core.runtime.errors import NotFound
from patone.tenants.isolation import TenantRef

ACCEPTED = (Kind.staff, Kind.partner, Kind.customer)


def verify(secret: str, tenant: TenantRef, token: str) -> Claims:
    """The claims of a token this API accepts on `tenant` (no revocation check yet)."""
    claims = verify_token(secret, token, audience=TENANT_AUDIENCE, tenant=tenant)
    if claims.kind not in ACCEPTED:
        raise InvalidToken(f"{claims.kind.value} tokens are not accepted by this API")
    if claims.kind is Kind.staff and not claims.subject.isdigit():
        raise InvalidToken("the access token names no user")
    if claims.kind is Kind.customer and not claims.subject.isdigit():
        raise InvalidToken("the access token names no customer")
    return claims


def caller(claims: Claims) -> str:
    """The caller's key for per-caller limits: "user:<id>" or "partner:<client_id>" (the same
    as the resulting actor's `kind:id`)."""
    return f"{'user' if claims.kind is Kind.staff else claims.kind.value}:{claims.subject}"


async def _staff_actor(tenant: TenantRef, claims: Claims) -> Actor:
    """The staff user's actor once the token is known unrevoked: one Redis round trip reads
    both, and the actor comes from the process's cache while the company's users, roles and
    drivers are unchanged (`users.cached_actor`)."""
    (version,) = await revocation.check(tenant.slug, claims, actors_version_key(tenant.slug))
    try:
        actor = await cached_actor(tenant, int(claims.subject), version)
    except NotFound:
        raise InvalidToken("the token's user no longer exists or was deactivated") from None
    return dataclasses.replace(actor, allow_list_only=claims.allow_list_only)


async def _partner_actor(tenant: TenantRef, claims: Claims) -> Actor:
    """A partner's actor (what its scopes allow) once its token is known unrevoked and its
    client known to exist (both looked up at once)."""
    exists, _ = await asyncio.gather(
        api_clients.client_exists(tenant, claims.subject), revocation.check(tenant.slug, claims)
    )
    if not exists:
        raise InvalidToken("the token's client no longer exists")
    api_clients.note_use(tenant, claims.subject)
    return api_clients.partner_actor(claims)


async def _customer_actor(tenant: TenantRef, claims: Claims) -> Actor:
    """A customer's actor once their token is known unrevoked: no permission at all (the API
    lets customers run only what `graphql.audience` lists: watching their own requests)."""
    await revocation.check(tenant.slug, claims)
    return Actor(kind="customer", id=claims.subject)


_ACTORS = {Kind.staff: _staff_actor, Kind.partner: _partner_actor, Kind.customer: _customer_actor}


async def actor_for(tenant: TenantRef, claims: Claims, *also: Awaitable[object]) -> Actor:
    """The actor of verified `claims` once revocation is checked; `also` (e.g. the rate limit)
    runs at the same time and its error, if any, comes after the token's own."""
    own = _ACTORS[claims.kind]
    found, *rest = await asyncio.gather(own(tenant, claims), *also, return_exceptions=True)
    for outcome in (found, *rest):
        if isinstance(outcome, BaseException):
            raise outcome
    assert isinstance(found, Actor)
    return found


async def authenticate(secret: str, tenant: TenantRef, token: str) -> tuple[Actor, Claims]:
    """The actor behind `token` on `tenant` and the token's claims; else `InvalidToken`
    (`revocation.RevokedToken` for a revoked one)."""
    claims = verify(secret, tenant, token)
    return await actor_for(tenant, claims), claims
