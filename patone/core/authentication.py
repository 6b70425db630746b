"""Who is calling a tenant's API: a genuine, unrevoked access token turned into an `Actor`.

The signature check uses the in-memory keyring and revocation is one Redis MGET; a staff
user's current role is read from the tenant (so a changed role or a deactivated user takes
effect at once), a partner's permissions come from its token's scopes.
"""

from __future__ import annotations

import dataclasses

from patone.core import api_clients, revocation
from patone.core.errors import NotFound
from patone.core.permissions import Actor
from patone.core.tokens import TENANT_AUDIENCE, Claims, InvalidToken, Kind, verify_token
from patone.core.users import actor_for_user
from patone.tenants.isolation import TenantRef

ACCEPTED = (Kind.staff, Kind.partner)


async def authenticate(secret: str, tenant: TenantRef, token: str) -> tuple[Actor, Claims]:
    """The actor behind `token` on `tenant` and the token's claims; else `InvalidToken`
    (`revocation.RevokedToken` for a revoked one)."""
    claims = verify_token(secret, token, audience=TENANT_AUDIENCE, tenant=tenant.slug)
    if claims.kind not in ACCEPTED:
        raise InvalidToken(f"{claims.kind.value} tokens are not accepted by this API")
    await revocation.check(tenant.slug, claims)
    if claims.kind is Kind.partner:
        api_clients.note_use(tenant, claims.subject)
        return api_clients.partner_actor(claims), claims
    try:
        actor = await actor_for_user(tenant, int(claims.subject))
    except ValueError:
        raise InvalidToken("the access token names no user") from None
    except NotFound:
        raise InvalidToken("the token's user no longer exists or was deactivated") from None
    return dataclasses.replace(actor, allow_list_only=claims.allow_list_only), claims
