"""Revoked access tokens: kept in Redis only as long as the tokens would have lived.

Access tokens are not stored, so revoking one means remembering its `jti` until it expires;
signing someone out everywhere (or revoking a partner client) means remembering "every token of
this subject issued until now" for the longest token life. Checking both is one MGET per
authenticated request. Keys live in the tenant's namespace (`t:<slug>:revoked:...`), so a purged
tenant takes them along.
"""

from __future__ import annotations

import time
from typing import Any

from patone.core.common import activity
from patone.core.common.permissions import Actor
from patone.core.identity.signing_keys import MAX_TOKEN_TTL
from patone.core.identity.tokens import Claims, InvalidToken, Kind
from patone.core.runtime.redis import get_redis, tenant_key
from patone.tenants.isolation import TenantRef, tenant_transaction


class RevokedToken(InvalidToken):
    def __init__(self) -> None:
        super().__init__("the access token was revoked: sign in again")


def _token_key(tenant: str, token_id: str) -> str:
    return tenant_key(tenant, "revoked", "jti", token_id)


def _subject_key(tenant: str, kind: Kind | str, subject: str) -> str:
    return tenant_key(tenant, "revoked", str(kind), subject)


async def revoke_token(tenant: str, token_id: str, expires_at: float) -> None:
    """Refuse the token `token_id` from now until it expires anyway."""
    remaining = int(expires_at - time.time()) + 1
    if remaining > 0:
        await get_redis().set(_token_key(tenant, token_id), "1", ex=remaining)


async def revoke_access_token(tenant: TenantRef, claims: Claims) -> None:
    """Revoke one access token and say so in the tenant's activity log."""
    await revoke_token(tenant.slug, claims.token_id, claims.expires_at)
    actor = Actor(
        kind="user" if claims.kind is Kind.staff else claims.kind.value, id=claims.subject
    )
    async with tenant_transaction(tenant):
        await activity.record(
            actor,
            claims.kind.value,
            claims.subject,
            "token.revoked",
            None,
            {"jti": claims.token_id},
        )


async def revoke_subject(tenant: str, kind: Kind, subject: str) -> None:
    """Refuse every token of this subject issued until now (sign out everywhere, a
    deactivated user, a revoked partner client); tokens issued afterwards work (issue times
    are compared to the millisecond)."""
    await get_redis().set(_subject_key(tenant, kind, subject), repr(time.time()), ex=MAX_TOKEN_TTL)


async def _read(tenant: str, claims: Claims, *also_read: str) -> tuple[bool, list[Any]]:
    token, cutoff, *values = await get_redis().mget(
        _token_key(tenant, claims.token_id),
        _subject_key(tenant, claims.kind, claims.subject),
        *also_read,
    )
    revoked = token is not None or (cutoff is not None and claims.issued_at <= float(cutoff))
    return revoked, values


async def is_revoked(tenant: str, claims: Claims) -> bool:
    return (await _read(tenant, claims))[0]


async def check(tenant: str, claims: Claims, *also_read: str) -> list[Any]:
    """Raise `RevokedToken` if the token was revoked; else the values of the Redis keys
    `also_read`, read in the same round trip."""
    revoked, values = await _read(tenant, claims, *also_read)
    if revoked:
        raise RevokedToken
    return values
