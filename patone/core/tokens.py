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
from dataclasses import dataclass

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


def issue_access_token(
    secret: str, tenant: str, user_id: int, ttl: int = DEFAULT_TTL, *, allow_list_only: bool = False
) -> str:
    """A token for one staff user of one tenant, valid `ttl` seconds; with `allow_list_only`
    its bearer may run only the company's registered GraphQL documents."""
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": ISSUER,
        "sub": str(user_id),
        "tenant": tenant,
        "iat": now,
        "exp": now + ttl,
        "jti": uuid.uuid4().hex,
    }
    if allow_list_only:
        claims["pq"] = "allow_list"
    return jwt.encode({"alg": ALGORITHM, "typ": "JWT"}, claims, _key(secret))


def verify_access_token(secret: str, token: str, *, tenant: str) -> AccessClaims:
    """The token's claims if it is genuine, unexpired and for `tenant`; else `InvalidToken`."""
    try:
        decoded = jwt.decode(token, _key(secret), algorithms=[ALGORITHM])
        registry = jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": ISSUER},
            sub={"essential": True},
            exp={"essential": True},
            tenant={"essential": True},
        )
        registry.validate(decoded.claims)
    except JoseError as error:
        raise InvalidToken(f"the access token is not valid ({error.error})") from None
    except ValueError:
        raise InvalidToken("the access token is malformed") from None
    claims = decoded.claims
    if claims["tenant"] != tenant:
        raise InvalidToken("the access token belongs to another company")
    try:
        user_id = int(claims["sub"])
    except (TypeError, ValueError):
        raise InvalidToken("the access token names no user") from None
    return AccessClaims(
        tenant=claims["tenant"],
        user_id=user_id,
        expires_at=int(claims["exp"]),
        token_id=str(claims.get("jti", "")),
        allow_list_only=claims.get("pq") == "allow_list",
    )
