"""Signed access tokens (JWT, joserfc): who is calling, for which tenant, until when.

Tokens are ES256 JWTs signed with the process's keyring (`signing_keys.py`): the header names
the key (`kid`), public keys are published at /.well-known/jwks.json, and only ES256 is
accepted, so `alg: none` or an HMAC made with the public key is refused. `secret` is
SECRET_KEY: it names the keyring and opens its private keys. Every token carries a `jti` and
`iat`, which revocation (`revocation.py`) checks. A token names its tenant by slug and by
immutable id (`tid`); one presented on another tenant, or on a later tenant that took a
purged tenant's slug, is refused. There is no bypass header and no default user: without
a valid token the API answers "sign in".
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, GuestProtocol

from patone.core.identity.signing_keys import ALGORITHM, MAX_TOKEN_TTL, keyring_for
from patone.core.runtime.errors import UserError
from patone.tenants.isolation import TenantRef

ISSUER = "patone"
DEFAULT_TTL = 15 * 60
CLOCK_LEEWAY = 5  # seconds


class InvalidToken(UserError):
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
    issued_at: float = 0.0  # to the millisecond (revocation compares it with a cut-off)
    role: str | None = None  # a staff user's role when the token was issued (informative)


def issue_token(
    secret: str,
    *,
    kind: Kind,
    subject: str,
    tenant: TenantRef | None,
    ttl: int = DEFAULT_TTL,
    scopes: Iterable[str] = (),
    allow_list_only: bool = False,
    role: str | None = None,
) -> str:
    """A signed access token for one subject of one kind, valid `ttl` seconds. Operators'
    tokens carry the platform audience and no tenant; every other kind names its tenant. A
    staff token may name the user's `role` when it was issued, for the client's benefit: the
    API acts on the user's current role, not on this claim."""
    if (kind is Kind.operator) != (tenant is None):
        raise ValueError("operator tokens have no tenant; every other kind has one")
    if not 0 < ttl <= MAX_TOKEN_TTL:
        raise ValueError(f"a token lives between 1 and {MAX_TOKEN_TTL} seconds")
    keyring = keyring_for(secret)
    keyring.ensure_loaded()
    key = keyring.signing_key()
    assert key.private is not None  # signing_key() only returns keys it can open
    issued_ms = int(time.time() * 1000)
    now = issued_ms // 1000
    claims: dict[str, object] = {
        "iss": ISSUER,
        "aud": PLATFORM_AUDIENCE if kind is Kind.operator else TENANT_AUDIENCE,
        "sub": subject,
        "kind": kind.value,
        "iat": now,
        "exp": now + ttl,
        "jti": uuid.uuid4().hex,
        # `iat` counts whole seconds; sign-out-everywhere must not refuse a token issued just
        # after it in the same second.
        "iat_ms": issued_ms,
    }
    if tenant is not None:
        claims["tenant"] = tenant.slug
        claims["tid"] = str(tenant.id)
    if scopes:
        claims["scope"] = " ".join(sorted(scopes))
    if allow_list_only:
        claims["pq"] = "allow_list"
    if role:
        claims["role"] = role
    return jwt.encode({"alg": ALGORITHM, "typ": "JWT", "kid": key.kid}, claims, key.private)


def verify_token(
    secret: str, token: str, *, audience: str, tenant: TenantRef | None = None
) -> Claims:
    """The claims of a genuine, unexpired token for `audience` (and `tenant`, for tenant
    tokens); else `InvalidToken` saying what is wrong.

    A client sends the same token for many requests, so tokens that verified are remembered
    (a bounded LRU) until they expire: the signature check, most of the cost, runs once.
    """
    index = (secret, token, audience, _identity(tenant))
    known = _verified.get(index)
    if known is not None and known.expires_at > time.time():
        _verified.move_to_end(index)
        return known
    claims = _verify(secret, token, audience=audience, tenant=tenant)
    _verified[index] = claims
    if len(_verified) > _VERIFIED_MAX:
        _verified.popitem(last=False)
    return claims


_VERIFIED_MAX = 4096
_verified: OrderedDict[tuple[str, str, str, tuple[str, str] | None], Claims] = OrderedDict()


def _identity(tenant: TenantRef | None) -> tuple[str, str] | None:
    """What a token must name to be the tenant's: its slug and its immutable id."""
    return (tenant.slug, str(tenant.id)) if tenant is not None else None


def _verify(secret: str, token: str, *, audience: str, tenant: TenantRef | None) -> Claims:
    keyring = keyring_for(secret)
    keyring.ensure_loaded()

    def key_for(guest: GuestProtocol) -> ECKey:
        kid = guest.headers().get("kid")
        key = keyring.verification_key(kid) if isinstance(kid, str) else None
        if key is None:
            raise _UnknownKey
        return key

    try:
        decoded = jwt.decode(token, key_for, algorithms=[ALGORITHM])
        (_REGISTRY.get(audience) or _registry(audience)).validate(decoded.claims)
    except _UnknownKey:
        raise InvalidToken(
            "the access token is signed with a key this server does not know"
        ) from None
    except JoseError as error:
        detail = error.description or error.error
        raise InvalidToken(f"the access token is not valid ({detail})") from None
    except ValueError:
        raise InvalidToken("the access token is malformed") from None
    claims = decoded.claims
    try:
        kind = Kind(claims["kind"])
    except ValueError:
        raise InvalidToken("the access token is of an unknown kind") from None
    named = (claims.get("tenant"), claims.get("tid"))
    if audience == TENANT_AUDIENCE and named != _identity(tenant):
        raise InvalidToken("the access token belongs to another company")
    return Claims(
        kind=kind,
        subject=str(claims["sub"]),
        tenant=claims.get("tenant"),
        expires_at=int(claims["exp"]),
        token_id=str(claims.get("jti", "")),
        scopes=frozenset(str(claims.get("scope", "")).split()),
        allow_list_only=claims.get("pq") == "allow_list",
        issued_at=_issued_at(claims),
        role=str(claims["role"]) if claims.get("role") else None,
    )


def _issued_at(claims: dict[str, object]) -> float:
    precise = claims.get("iat_ms")
    if isinstance(precise, int) and not isinstance(precise, bool):
        return precise / 1000
    iat = claims.get("iat")
    return float(iat) if isinstance(iat, int | float) else 0.0


class _UnknownKey(Exception):
    pass


def _registry(audience: str) -> jwt.JWTClaimsRegistry:
    # Servers' clocks differ a little: a token issued on one must not be "from the future" on
    # another, nor expire there early.
    return jwt.JWTClaimsRegistry(
        leeway=CLOCK_LEEWAY,
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": audience},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
        jti={"essential": True},
        kind={"essential": True},
    )


_REGISTRY = {audience: _registry(audience) for audience in (TENANT_AUDIENCE, PLATFORM_AUDIENCE)}


def issue_access_token(
    secret: str,
    tenant: TenantRef,
    user_id: int,
    ttl: int = DEFAULT_TTL,
    *,
    allow_list_only: bool = False,
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
