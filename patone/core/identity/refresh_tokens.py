"""Refresh tokens: opaque, single-use, rotated on every use, with reuse detection.

A sign-in starts a *family*; each refresh marks the presented token used and issues its child
in the same family together with a new access token. Presenting a token that was already used
means two parties hold copies (one of them stole it): the whole family is revoked, the access
tokens it issued that still live are revoked too, and the activity log says so. Only a SHA-256
of each token is stored (they are 256-bit random values, so a slow hash would add nothing).
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from patone.core.common import activity
from patone.core.common.permissions import Actor
from patone.core.identity import revocation
from patone.core.identity.tokens import DEFAULT_TTL, Kind, issue_token, verify_token
from patone.core.runtime.db import engine
from patone.core.runtime.errors import UserError
from patone.tenants.isolation import TenantRef, tenant_transaction

REFRESH_TTL = timedelta(days=30)
PREFIX = "prt_"
_KINDS = (Kind.staff, Kind.customer)


class InvalidGrant(UserError):
    """A refresh token that is unknown, expired, revoked or already used (RFC 6749 §5.2)."""

    def __init__(self, message: str) -> None:
        super().__init__("invalid_grant", message, "refresh_token")


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"  # noqa: S105 (the RFC 6750 scheme name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
        }


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _actor(kind: Kind, subject: str) -> Actor:
    return Actor(kind="user" if kind is Kind.staff else kind.value, id=subject)


async def _may_sign_in(kind: Kind, subject: str) -> bool:
    """Whether a staff user is still active (inside the tenant transaction); customers are
    checked by the portal that signs them in."""
    if kind is not Kind.staff:
        return True
    return bool(await engine.fetch("SELECT 1 FROM users WHERE id = $1 AND active", int(subject)))


async def _store(
    secret: str,
    tenant: TenantRef,
    kind: Kind,
    subject: str,
    family: uuid.UUID,
    parent: int | None,
    ttl: int = DEFAULT_TTL,
) -> TokenPair:
    """Issue an access token and a refresh token and store the latter (inside the caller's
    tenant transaction)."""
    role = None
    if kind is Kind.staff:  # named in the token for the client; the API reads the current one
        rows = await engine.fetch("SELECT role FROM users WHERE id = $1", int(subject))
        role = rows[0]["role"] if rows else None
    access = issue_token(secret, kind=kind, subject=subject, tenant=tenant, ttl=ttl, role=role)
    claims = verify_token(secret, access, audience="patone:tenant", tenant=tenant)
    refresh = PREFIX + secrets.token_urlsafe(32)
    await engine.execute(
        "INSERT INTO refresh_tokens (family, subject_kind, subject, token_hash, parent, "
        "access_token_id, access_expires_at, expires_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7), now() + $8::interval)",
        family,
        kind.value,
        subject,
        _hash(refresh),
        parent,
        claims.token_id,
        claims.expires_at,
        REFRESH_TTL,
    )
    return TokenPair(access, refresh, ttl)


async def issue_token_pair(
    secret: str,
    tenant: TenantRef,
    user_id: int | str,
    *,
    kind: Kind = Kind.staff,
    ttl: int = DEFAULT_TTL,
) -> TokenPair:
    """A new access token (valid `ttl` seconds) and the first refresh token of a new family,
    for a subject who just signed in (a staff user by default; customers too)."""
    if kind not in _KINDS:
        raise ValueError("refresh tokens are for staff and customers")
    subject = str(user_id)
    async with tenant_transaction(tenant):
        if not await _may_sign_in(kind, subject):
            raise InvalidGrant("the user does not exist or was deactivated")
        family = uuid.uuid4()
        pair = await _store(secret, tenant, kind, subject, family, None, ttl)
        await activity.record(
            _actor(kind, subject), kind.value, subject, "token.issued", None, {"family": family}
        )
    return pair


async def _revoke_family(tenant: TenantRef, family: uuid.UUID) -> int:
    """Revoke every token of a family and the access tokens it issued that still live."""
    rows = await engine.fetch(
        "UPDATE refresh_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE family = $1 "
        "RETURNING access_token_id, access_expires_at",
        family,
    )
    now = time.time()
    for row in rows:
        expires = row["access_expires_at"].timestamp()
        if expires > now:
            await revocation.revoke_token(tenant.slug, row["access_token_id"], expires)
    return len(rows)


async def _refusal(tenant: TenantRef, row: Any, kind: Kind) -> str | None:
    """Why this stored token cannot be used, logged in the activity log (a reuse revokes its
    family first); None when it can."""
    actor = _actor(kind, row["subject"])
    if row["used_at"] is not None and row["revoked_at"] is None:
        revoked = await _revoke_family(tenant, row["family"])
        await activity.record(
            actor,
            kind.value,
            row["subject"],
            "token.reuse_detected",
            None,
            {"family": row["family"], "revoked": revoked},
        )
        return "the refresh token was already used: every token of its sign-in is revoked"
    if row["revoked_at"] is not None:
        reason = "the refresh token was revoked: sign in again"
    elif row["expires_at"] < datetime.now(row["expires_at"].tzinfo):
        reason = "the refresh token has expired: sign in again"
    elif not await _may_sign_in(kind, row["subject"]):
        reason = "the user no longer exists or was deactivated"
    else:
        return None
    await activity.record(
        actor,
        kind.value,
        row["subject"],
        "token.refresh_refused",
        None,
        {"family": row["family"], "reason": reason},
    )
    return reason


async def refresh(secret: str, tenant: TenantRef, refresh_token: str) -> TokenPair:
    """Exchange a refresh token for a new pair; `InvalidGrant` when it cannot be used (the
    refusal is logged and kept: a reuse revokes the token's whole family)."""
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "SELECT id, family, subject_kind, subject, used_at, revoked_at, expires_at "
            "FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
            _hash(refresh_token),
        )
        if not rows:
            raise InvalidGrant("the refresh token is not known")
        row = rows[0]
        kind = Kind(row["subject_kind"])
        refused = await _refusal(tenant, row, kind)
        if refused is None:
            await engine.execute(
                "UPDATE refresh_tokens SET used_at = now() WHERE id = $1", row["id"]
            )
            pair = await _store(secret, tenant, kind, row["subject"], row["family"], row["id"])
            await activity.record(
                _actor(kind, row["subject"]),
                kind.value,
                row["subject"],
                "token.refreshed",
                None,
                {"family": row["family"]},
            )
    if refused is not None:
        raise InvalidGrant(refused)
    return pair


async def revoke(tenant: TenantRef, refresh_token: str) -> bool:
    """Revoke the family of a refresh token (sign out of one device); False if unknown."""
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "SELECT family, subject_kind, subject FROM refresh_tokens WHERE token_hash = $1",
            _hash(refresh_token),
        )
        if not rows:
            return False
        row = rows[0]
        await _revoke_family(tenant, row["family"])
        kind = Kind(row["subject_kind"])
        await activity.record(
            _actor(kind, row["subject"]),
            kind.value,
            row["subject"],
            "token.revoked",
            None,
            {"family": row["family"]},
        )
    return True


async def revoke_all(tenant: TenantRef, actor: Actor, kind: Kind, subject: str) -> None:
    """Sign a subject out everywhere: every refresh family and every access token issued until
    now (also what deactivating a user should call)."""
    async with tenant_transaction(tenant):
        await engine.execute(
            "UPDATE refresh_tokens SET revoked_at = now() "
            "WHERE subject_kind = $1 AND subject = $2 AND revoked_at IS NULL",
            kind.value,
            subject,
        )
        await activity.record(actor, kind.value, subject, "token.revoked_all", None, None)
    await revocation.revoke_subject(tenant.slug, kind, subject)
