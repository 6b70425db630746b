"""JSON endpoints for staff credentials, for API clients (the UIs' forms come with sessions).

All are POSTs on a company's host (or with X-Tenant), bodies and answers in JSON, errors in the
project's shape (`web.error_response`):

- `/auth/sign-in` {"email", "password"} -> {"access_token", "token_type": "Bearer",
  "expires_in", "refresh_token", "must_change_password"} (the refresh token is spent at
  `POST /oauth/token`, grant_type=refresh_token); 401 "the email or password is wrong" for
  every failure; 429 with Retry-After while the account is locked or the sign-in rate limit is
  spent. An account with two-factor sends "code" too (else 401 `two_factor_required`); one
  whose role requires two-factor and has none gets 403 `two_factor_enrolment_required` with an
  "enrolment_token" and no tokens; one flagged must-change 403 `password_change_required` with
  a "password_change_token" (`patone.core.identity.staff_sign_in`).
- `/auth/two-factor/enrol` and `/auth/two-factor/confirm` {"code"} with the enrolment token as
  bearer: the QR code, then the recovery codes.
- `/auth/setup` {"token", "password"} -> {"status": "password_set"}
- `/auth/reset-password` {"email"} -> 202 always (a malformed address excepted)
- `/auth/reset-password/confirm` {"token", "password"} -> {"status": "password_set"}
- `/auth/change-password` {"current_password", "password"} with a staff bearer token.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from patone.core.common.inputs import parse
from patone.core.identity import credentials, refresh_tokens, staff_sign_in
from patone.core.identity.authentication import authenticate
from patone.core.identity.passwords import MAX_LENGTH
from patone.core.identity.tokens import DEFAULT_TTL, InvalidToken
from patone.core.runtime.errors import UserError
from patone.core.runtime.web import (
    SMALL_BODY,
    bearer_token,
    client_ip,
    error_response,
    request_body,
    user_error_response,
)
from patone.tenants.registry import TenantInfo
from patone.tenants.web import company, company_and_bearer

Handler = Callable[[Request, TenantInfo, dict[str, Any]], Awaitable[Response]]


class _Body(BaseModel):
    # Passwords are taken as typed: no trimming.
    model_config = ConfigDict(extra="forbid", frozen=True)


class SignInBody(_Body):
    email: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=MAX_LENGTH)
    code: str | None = Field(default=None, max_length=64)


class CodeBody(_Body):
    code: str = Field(min_length=1, max_length=64)


class TokenPasswordBody(_Body):
    token: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=MAX_LENGTH)


class ResetBody(_Body):
    email: str = Field(min_length=1, max_length=254)


class ChangeBody(_Body):
    current_password: str = Field(min_length=1, max_length=MAX_LENGTH)
    password: str = Field(min_length=1, max_length=MAX_LENGTH)


def _client_ip(request: Request) -> str:
    return client_ip(request.scope)


def _is_restricted(token: str) -> bool:
    """A restricted sign-in token (`staff_sign_in`) rather than a JWT, which has dots."""
    return "." not in token


def _endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Resolve the tenant and read a JSON object body; user errors become JSON answers."""

    async def endpoint(request: Request) -> Response:
        try:
            tenant = company(request.scope)
            raw = await request_body(request, SMALL_BODY)
        except UserError as error:  # no company named, or a body over the limit
            return user_error_response(error)
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return error_response("invalid_json", "Send a JSON object.")
        try:
            return await handler(request, tenant, body)
        except staff_sign_in.StepRequired as error:
            return error_response(error.code, error.message, **error.extra)
        except UserError as error:  # with Retry-After when locked or rate limited
            return user_error_response(error)

    return endpoint


def auth_routes(secret: str, access_ttl: int = DEFAULT_TTL) -> list[Route]:
    """The routes, signing access tokens with `secret`."""

    async def sign_in(request: Request, tenant: TenantInfo, body: dict[str, Any]) -> Response:
        given = parse(SignInBody, body)
        who = await staff_sign_in.sign_in_api(
            tenant, given.email, given.password, given.code, ip=_client_ip(request)
        )
        pair = await refresh_tokens.issue_token_pair(secret, tenant, who.user_id, ttl=access_ttl)
        return JSONResponse(
            {**pair.as_dict(), "must_change_password": who.must_change_password},
            headers={"Cache-Control": "no-store"},
        )

    async def setup(request: Request, tenant: TenantInfo, body: dict[str, Any]) -> Response:
        given = parse(TokenPasswordBody, body)
        await staff_sign_in.check_link(tenant, given.token, ip=_client_ip(request))
        await credentials.complete_setup(tenant, given.token, given.password)
        return JSONResponse({"status": "password_set"})

    async def reset(request: Request, tenant: TenantInfo, body: dict[str, Any]) -> Response:
        given = parse(ResetBody, body)
        await credentials.request_reset(tenant, given.email, ip=_client_ip(request))
        return JSONResponse(
            {
                "status": "accepted",
                "message": "If this address has an account, a link to reset its password is "
                "on its way.",
            },
            status_code=202,
        )

    async def confirm(request: Request, tenant: TenantInfo, body: dict[str, Any]) -> Response:
        given = parse(TokenPasswordBody, body)
        await staff_sign_in.check_link(tenant, given.token, ip=_client_ip(request))
        await credentials.reset_password(tenant, given.token, given.password)
        return JSONResponse({"status": "password_set"})

    async def change(request: Request, tenant: TenantInfo, body: dict[str, Any]) -> Response:
        _, token = company_and_bearer(request.scope)
        if _is_restricted(token):  # the password-change token of a must-change sign-in
            given = parse(ChangeBody, body)
            await staff_sign_in.change_password(
                tenant, token, given.current_password, given.password
            )
            return JSONResponse({"status": "password_changed"})
        try:
            actor, _claims = await authenticate(secret, tenant, token)
        except InvalidToken as error:
            return user_error_response(error)
        if actor.kind != "user":
            return error_response("forbidden", "Only staff users have a password.")
        given = parse(ChangeBody, body)
        await credentials.change_password(tenant, actor, given.current_password, given.password)
        return JSONResponse({"status": "password_changed"})

    async def enrol(request: Request, tenant: TenantInfo, body: dict[str, Any]) -> Response:
        started = await staff_sign_in.enrolment(tenant, bearer_token(request.scope) or "")
        return JSONResponse(
            {"otpauth_uri": started.uri, "qr_svg": started.qr_svg, "secret": started.secret},
            headers={"Cache-Control": "no-store"},
        )

    async def confirm_enrolment(
        request: Request, tenant: TenantInfo, body: dict[str, Any]
    ) -> Response:
        given = parse(CodeBody, body)
        token = bearer_token(request.scope) or ""  # the enrolment token
        _, codes = await staff_sign_in.confirm_enrolment(tenant, token, given.code)
        return JSONResponse(
            {"status": "two_factor_enabled", "recovery_codes": codes},
            headers={"Cache-Control": "no-store"},
        )

    return [
        Route("/auth/sign-in", _endpoint(sign_in), methods=["POST"]),
        Route("/auth/two-factor/enrol", _endpoint(enrol), methods=["POST"]),
        Route("/auth/two-factor/confirm", _endpoint(confirm_enrolment), methods=["POST"]),
        Route("/auth/setup", _endpoint(setup), methods=["POST"]),
        Route("/auth/reset-password", _endpoint(reset), methods=["POST"]),
        Route("/auth/reset-password/confirm", _endpoint(confirm), methods=["POST"]),
        Route("/auth/change-password", _endpoint(change), methods=["POST"]),
    ]
