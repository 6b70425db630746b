"""OAuth 2.0 endpoints: the token endpoint, token revocation and the public keys.

- `POST /oauth/token` (RFC 6749): `client_credentials` for partners (§4.4; client auth by HTTP
  Basic or `client_id`/`client_secret` in the body, §2.3.1) and `refresh_token` for staff and
  customers (§6). Errors are RFC 6749 §5.2 JSON: `invalid_request`, `invalid_client` (401, with
  `WWW-Authenticate` when Basic was used), `invalid_grant`, `unsupported_grant_type`,
  `invalid_scope`; 429 `rate_limited` with Retry-After past the caller's API budget.
- `POST /oauth/revoke` (RFC 7009): revoke a refresh token (its whole sign-in) or an access token.
- `GET /.well-known/jwks.json` (RFC 7517): the keys that verify our access tokens.

A partner's company is found from its client_id; when the request also names a company (host
or X-Tenant), the two must agree. Refresh and revocation need the company named.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from patone.core.identity import api_clients, ratelimits, refresh_tokens, revocation, signing_keys
from patone.core.identity.tokens import DEFAULT_TTL, TENANT_AUDIENCE, InvalidToken, verify_token
from patone.core.runtime.errors import UserError
from patone.core.runtime.web import BodyTooLarge, client_ip, request_body
from patone.tenants.registry import TenantInfo, get_tenant

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
MAX_FORM = 8192


class OAuthError(Exception):
    def __init__(
        self, error: str, description: str, status: int = 400, retry_after: int | None = None
    ) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.retry_after = retry_after


def _oauth_error(error: OAuthError, *, basic: bool = False) -> JSONResponse:
    headers = dict(_NO_STORE)
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="patone"' if basic else "Basic"
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    return JSONResponse(
        {"error": error.error, "error_description": error.description},
        status_code=error.status,
        headers=headers,
    )


async def _form(request: Request) -> dict[str, str]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "send the parameters form-encoded (RFC 6749 §3.2)")
    try:
        body = await request_body(request, MAX_FORM)
    except BodyTooLarge as error:
        raise OAuthError("invalid_request", error.message, 413) from None
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        raise OAuthError("invalid_request", "the body is not a valid form") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise OAuthError("invalid_request", f"the parameter {name} is repeated")
        form[name] = value
    return form


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError("invalid_client", "the Basic credentials are malformed", 401) from None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise OAuthError("invalid_client", "the Basic credentials are malformed", 401)
    return unquote_plus(client_id), unquote_plus(secret)


async def _client_tenant(request: Request, client_id: str) -> TenantInfo | None:
    named: TenantInfo | None = getattr(request.state, "tenant", None)
    slug = await api_clients.tenant_slug_of(client_id) if client_id else None
    if slug is None or (named is not None and named.slug != slug):
        return None
    tenant = named or await get_tenant(slug)
    if tenant is None or tenant.status != "active":
        return None
    return tenant


async def _client_credentials(request: Request, form: dict[str, str]) -> dict[str, Any]:
    basic = _basic_credentials(request)
    in_body = "client_id" in form or "client_secret" in form
    if basic is not None and in_body:
        raise OAuthError("invalid_request", "authenticate the client one way, not two")
    if basic is None and not in_body:
        raise OAuthError("invalid_client", "client authentication is required", 401)
    client_id, secret = basic or (form.get("client_id", ""), form.get("client_secret", ""))
    refused = OAuthError("invalid_client", "unknown client or wrong secret", 401)
    tenant = await _client_tenant(request, client_id)
    if tenant is None:
        raise refused
    # Wrong secrets count against the address that sends them, never against the client: else
    # anyone who knows a client_id could lock the partner out. While that address has spent
    # its failures it is refused before the secret is checked, so its guesses teach nothing.
    failures = _failures_key(request)
    await _guard(ratelimits.refuse_if_spent(tenant, ratelimits.Limit.sign_in_ip, failures))
    client = await api_clients.authenticate(tenant, client_id, secret)
    if client is None:
        await ratelimits.count_failure(tenant, ratelimits.Limit.sign_in_ip, failures)
        raise refused
    await _count(tenant, f"partner:{client_id}")  # its own budget, now that it is the client
    signing = request.app.state.signing_secret
    try:
        token, scopes = await api_clients.issue_client_token(
            signing, tenant, client, form.get("scope")
        )
    except UserError as error:
        raise OAuthError("invalid_scope", error.message) from None
    return {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": DEFAULT_TTL,
        "scope": " ".join(scopes),
    }


async def _count(tenant: TenantInfo, caller: str) -> None:
    """A token request counts against the caller's and the company's API budget."""
    await _guard(ratelimits.check_api(tenant, caller=caller))


async def _guard(check: Awaitable[None]) -> None:
    """Run a rate-limit check; its refusal in RFC 6749's shape (429 with Retry-After)."""
    try:
        await check
    except ratelimits.RateLimited as error:
        raise OAuthError("rate_limited", error.message, 429, error.retry_after) from None


def _failures_key(request: Request) -> str:
    """Failed token requests are counted per client address, apart from its sign-ins."""
    return f"oauth:{client_ip(request.scope)}"


def _named_tenant(request: Request) -> TenantInfo:
    tenant: TenantInfo | None = getattr(request.state, "tenant", None)
    if tenant is None:
        raise OAuthError(
            "invalid_request", "name the company: use its subdomain or an X-Tenant header"
        )
    return tenant


async def _refresh(request: Request, form: dict[str, str]) -> dict[str, Any]:
    tenant = _named_tenant(request)
    # Like wrong client secrets, bad refresh tokens count against the address sending them;
    # its own API budget, not the company's, pays for the attempt, so nobody who is not yet
    # anyone can spend the company's.
    failures = _failures_key(request)
    await _guard(ratelimits.refuse_if_spent(tenant, ratelimits.Limit.sign_in_ip, failures))
    await _guard(
        ratelimits.hit(tenant, (ratelimits.Limit.api_caller, f"ip:{client_ip(request.scope)}"))
    )
    token = form.get("refresh_token", "")
    if not token:
        raise OAuthError("invalid_request", "the refresh_token parameter is missing")
    try:
        pair = await refresh_tokens.refresh(request.app.state.signing_secret, tenant, token)
    except refresh_tokens.InvalidGrant as error:
        await ratelimits.count_failure(tenant, ratelimits.Limit.sign_in_ip, failures)
        raise OAuthError("invalid_grant", error.message) from None
    return pair.as_dict()


GRANTS = {"client_credentials": _client_credentials, "refresh_token": _refresh}


async def token_endpoint(request: Request) -> Response:
    basic = request.headers.get("authorization", "").lower().startswith("basic ")
    try:
        form = await _form(request)
        grant_type = form.get("grant_type")
        if not grant_type:
            raise OAuthError("invalid_request", "the grant_type parameter is missing")
        grant = GRANTS.get(grant_type)
        if grant is None:
            raise OAuthError(
                "unsupported_grant_type",
                f"grant_type must be one of: {', '.join(GRANTS)}",
            )
        body = await grant(request, form)
    except OAuthError as error:
        return _oauth_error(error, basic=basic)
    return JSONResponse(body, headers=_NO_STORE)


async def revoke_endpoint(request: Request) -> Response:
    """RFC 7009: answers 200 whether or not the token was valid (§2.2), so it tells nothing."""
    try:
        form = await _form(request)
        tenant = _named_tenant(request)
        token = form.get("token", "")
        if not token:
            raise OAuthError("invalid_request", "the token parameter is missing")
    except OAuthError as error:
        return _oauth_error(error)
    if token.startswith(refresh_tokens.PREFIX):
        await refresh_tokens.revoke(tenant, token)
    else:
        try:
            claims = verify_token(
                request.app.state.signing_secret,
                token,
                audience=TENANT_AUDIENCE,
                tenant=tenant,
            )
        except InvalidToken:
            return Response(status_code=200, headers=_NO_STORE)
        await revocation.revoke_access_token(tenant, claims)
    return Response(status_code=200, headers=_NO_STORE)


async def jwks(request: Request) -> Response:
    """The public keys as stored; caches may keep them JWKS_MAX_AGE seconds (a new key is listed
    here as soon as it is stored and signs only ACTIVATION_DELAY later, longer than that, and an
    unknown kid should make verifiers fetch again)."""
    return JSONResponse(
        await signing_keys.published(),
        headers={"Cache-Control": f"public, max-age={signing_keys.JWKS_MAX_AGE}"},
    )
