"""Signed access tokens (JWT, joserfc): who is calling, for which tenant, until when.

This is the start the domain issue needs; the identity issue adds sign-in, refresh-token
rotation, asymmetric keys with `kid` and a JWKS endpoint, partners and revocation. A token
names its tenant; one presented on another tenant is refused. There is no bypass header and no
default user: without a valid token the API answers "sign in".
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from patone.core.errors import UserError

ISSUER = "patone"
ALGORITHM = "HS256"
DEFAULT_TTL = 15 * 60


class InvalidToken(UserError):
    status = 401

    def __init__(self, message: str) -> None:
        super().__init__("unauthenticated", message)


class Kind(StrEnum):
    """Who a token speaks for; each kind is accepted only where it belongs."""

    staff = "staff"  # a company's staff user (sub = users.id)
    customer = "customer"  # a company's customer in the portal (sub = customers.id)
    partner = "partner"  # a company's OAuth client (sub = client id)
    operator = "operator"  # a platform operator (no tenant; sub = operator id)


# Audiences: a tenant API token is refused by the platform API and the other way round.
TENANT_AUDIENCE = "patone:tenant"
PLATFORM_AUDIENCE = "patone:platform"


@dataclass(frozen=True)
class Claims:
    kind: Kind
    subject: str
    tenant: str | None
    expires_at: int
    token_id: str
    scopes: frozenset[str] = frozenset()
    allow_list_only: bool = False


@dataclass(frozen=True)
class AccessClaims:
    tenant: str
    user_id: int
    expires_at: int
    token_id: str
    allow_list_only: bool = False


def _key(secret: str) -> OctKey:
    # Derive a dedicated signing key so SECRET_KEY is never used raw for more than one purpose.
    derived = hashlib.sha256(b"patone access token v1\x00" + secret.encode()).digest()
    return OctKey.import_key(derived)


def issue_token(
    secret: str,
    *,
    kind: Kind,
    subject: str,
    tenant: str | None,
    ttl: int = DEFAULT_TTL,
    scopes: Iterable[str] = (),
    allow_list_only: bool = False,
) -> str:
    """A signed access token for one subject of one kind, valid `ttl` seconds. Operators'
    tokens carry the platform audience and no tenant; every other kind names its tenant."""
    if (kind is Kind.operator) != (tenant is None):
        raise ValueError("operator tokens have no tenant; every other kind has one")
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": ISSUER,
        "aud": PLATFORM_AUDIENCE if kind is Kind.operator else TENANT_AUDIENCE,
        "sub": subject,
        "kind": kind.value,
        "iat": now,
        "exp": now + ttl,
        "jti": uuid.uuid4().hex,
    }
    if tenant is not None:
        claims["tenant"] = tenant
    if scopes:
        claims["scope"] = " ".join(sorted(scopes))
    if allow_list_only:
        claims["pq"] = "allow_list"
    return jwt.encode({"alg": ALGORITHM, "typ": "JWT"}, claims, _key(secret))


def verify_token(secret: str, token: str, *, audience: str, tenant: str | None = None) -> Claims:
    """The claims of a genuine, unexpired token for `audience` (and `tenant`, for tenant
    tokens); else `InvalidToken` saying what is wrong."""
    try:
        decoded = jwt.decode(token, _key(secret), algorithms=[ALGORITHM])
        registry = jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": ISSUER},
            aud={"essential": True, "value": audience},
            sub={"essential": True},
            exp={"essential": True},
            kind={"essential": True},
        )
        registry.validate(decoded.claims)
    except JoseError as error:
        raise InvalidToken(f"the access token is not valid ({error.error})") from None
    except ValueError:
        raise InvalidToken("the access token is malformed") from None
    claims = decoded.claims
    try:
        kind = Kind(claims["kind"])
    except ValueError:
        raise InvalidToken("the access token is of an unknown kind") from None
    if audience == TENANT_AUDIENCE and claims.get("tenant") != tenant:
        raise InvalidToken("the access token belongs to another company")
    return Claims(
        kind=kind,
        subject=str(claims["sub"]),
        tenant=claims.get("tenant"),
        expires_at=int(claims["exp"]),
        token_id=str(claims.get("jti", "")),
        scopes=frozenset(str(claims.get("scope", "")).split()),
        allow_list_only=claims.get("pq") == "allow_list",
    )


def issue_access_token(
    secret: str, tenant: str, user_id: int, ttl: int = DEFAULT_TTL, *, allow_list_only: bool = False
) -> str:
    """A token for one staff user of one tenant, valid `ttl` seconds; with `allow_list_only`
    its bearer may run only the company's registered GraphQL documents."""
    return issue_token(
        secret,
        kind=Kind.staff,
        subject=str(user_id),
        tenant=tenant,
        ttl=ttl,
        allow_list_only=allow_list_only,
    )


def verify_access_token(secret: str, token: str, *, tenant: str) -> AccessClaims:
    """A staff token's claims if it is genuine, unexpired and for `tenant`; else `InvalidToken`."""
    claims = verify_token(secret, token, audience=TENANT_AUDIENCE, tenant=tenant)
    if claims.kind is not Kind.staff:
        raise InvalidToken("the access token is not a staff user's")
    try:
        user_id = int(claims.subject)
    except ValueError:
        raise InvalidToken("the access token names no user") from None
    return AccessClaims(
        tenant=tenant,
        user_id=user_id,
        expires_at=claims.expires_at,
        token_id=claims.token_id,
        allow_list_only=claims.allow_list_only,
    )
