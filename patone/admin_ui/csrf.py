"""CSRF tokens for the staff pages.

Signed in, a form carries its session's CSRF token (kept in Redis with the session). Before
sign-in (sign-in, set-up and reset forms) there is no session, so the form carries a signed
double-submit token: the same value in a cookie and in the form, signed with a key derived from
SECRET_KEY and bound to the company, so a cookie planted from elsewhere, or one taken from
another company's page, does not pass.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

FIELD = "csrf_token"
HEADER = "x-csrf-token"
COOKIE_NAME = "patone_csrf"


def derive_key(secret_key: str) -> bytes:
    """A key used only for CSRF tokens, so they reveal nothing about other uses of SECRET_KEY."""
    return hmac.new(secret_key.encode(), b"patone admin_ui csrf v1", hashlib.sha256).digest()


def _signature(key: bytes, slug: str, nonce: str) -> str:
    return hmac.new(key, f"{slug}\x00{nonce}".encode(), hashlib.sha256).hexdigest()


def new_signed_token(key: bytes, slug: str) -> str:
    """A fresh double-submit token for company `slug`: `<nonce>.<signature>`."""
    nonce = secrets.token_urlsafe(24)
    return f"{nonce}.{_signature(key, slug, nonce)}"


def signed_token_valid(key: bytes, slug: str, token: str) -> bool:
    """Whether the token was made by us for this company."""
    nonce, dot, signature = token.partition(".")
    if not dot or not nonce or len(token) > 200:
        return False
    return hmac.compare_digest(signature, _signature(key, slug, nonce))


def same(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a submitted token with the expected one."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())
