"""The platform API: operator sign-in at `/platform/auth/sign-in` and GraphQL at
`/platform/graphql`, on the platform's own host (no tenant).

A schema of its own, apart from the tenants' one: tenants, plans and the tenant life cycle.
Only operator tokens (platform audience) open it; a company's token is refused with 403 and
says why, and operator tokens are refused by the tenants' `/graphql` by their audience.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import strawberry
from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.extensions import MaxTokensLimiter
from strawberry.scalars import JSON
from strawberry.types import Info

from patone.core.common.inputs import EMAIL_MAX_LENGTH
from patone.core.identity import ratelimits
from patone.core.identity.passwords import MAX_LENGTH
from patone.core.identity.tokens import (
    PLATFORM_AUDIENCE,
    TENANT_AUDIENCE,
    InvalidToken,
    Kind,
    issue_token,
    verify_token,
)
from patone.core.runtime.errors import UserError
from patone.core.runtime.web import (
    SMALL_BODY,
    BodyTooLarge,
    bearer_token,
    client_ip,
    error_response,
    request_body,
    user_error_response,
)
from patone.graphql.arguments import ArgumentRules
from patone.graphql.error_log import PatoneSchema
from patone.graphql.errors import PatoneErrors, malformed, refused
from patone.graphql.limits import MAX_TOKENS, Limits, QueryLimits
from patone.graphql.types import UserError as UserErrorType
from patone.graphql.types import attempt
from patone.platform import console
from patone.platform.operators import Operator, get_operator, list_activity, sign_in
from patone.platform.plans import list_plans
from patone.tenants.registry import TenantInfo, get_tenant, list_tenants

OPERATOR_TOKEN_TTL = 15 * 60


@dataclass
class PlatformContext:
    operator: Operator
    delete_grace_days: int
    request: Any = None
    response: Any = None


@strawberry.type(description="A company using the platform.")
class PlatformTenant:
    slug: str
    name: str
    status: str
    status_reason: str
    plan: str
    domains: list[str]
    created_at: datetime
    deleted_at: datetime | None
    purge_after: datetime | None

    @classmethod
    def of(cls, tenant: TenantInfo) -> PlatformTenant:
        return cls(
            slug=tenant.slug,
            name=tenant.name,
            status=tenant.status,
            status_reason=tenant.status_reason,
            plan=tenant.plan,
            domains=list(tenant.domains),
            created_at=tenant.created_at,
            deleted_at=tenant.deleted_at,
            purge_after=tenant.purge_after,
        )


@strawberry.type(description="A plan of the catalogue and its limits (null: unlimited).")
class Plan:
    name: str
    title: str
    api_requests_per_minute: int
    max_drivers: int | None
    max_users: int | None
    max_plugins: int | None


@strawberry.type
class OperatorViewer:
    id: int
    email: str
    name: str


@strawberry.type(description="One line of the operators' activity log.")
class OperatorActivity:
    id: int
    operator_id: int | None
    email: str
    action: str
    entity: str
    entity_id: str
    detail: JSON | None
    ip: str
    created_at: datetime


@strawberry.type
class FirstAdmin:
    email: str
    name: str
    setup_link: str = strawberry.field(
        description="One-time link where the admin chooses a password (shown once)."
    )
    setup_link_expires_at: datetime


@strawberry.input
class CreateTenantInput:
    slug: str
    name: str
    admin_email: str
    admin_name: str
    plan: str = "standard"
    domains: list[str] | None = None
    reuse_purged_slug: bool = strawberry.field(
        default=False,
        description="Give the new company the slug of a purged one (it gets a new id: nothing "
        "the purged company held works for it). Without this, such a slug is refused.",
    )


@strawberry.type
class TenantPayload:
    tenant: PlatformTenant | None
    user_errors: list[UserErrorType]


@strawberry.type
class CreateTenantPayload:
    tenant: PlatformTenant | None
    admin: FirstAdmin | None
    user_errors: list[UserErrorType]


@strawberry.type
class PurgeTenantPayload:
    purged: bool
    user_errors: list[UserErrorType]


Ctx = Info[PlatformContext, None]


def _tenant_payload(tenant: TenantInfo | None, errors: list[UserErrorType]) -> TenantPayload:
    return TenantPayload(tenant=PlatformTenant.of(tenant) if tenant else None, user_errors=errors)


@strawberry.type
class PlatformQuery:
    @strawberry.field(description="The signed-in operator.")
    def viewer(self, info: Ctx) -> OperatorViewer:
        operator = info.context.operator
        return OperatorViewer(id=operator.id, email=operator.email, name=operator.name)

    @strawberry.field(description="Every tenant (or those with `status`), by slug.")
    async def tenants(self, status: str | None = None) -> list[PlatformTenant]:
        return [PlatformTenant.of(t) for t in await list_tenants(status)]

    @strawberry.field
    async def tenant(self, slug: str) -> PlatformTenant | None:
        found = await get_tenant(slug)
        return PlatformTenant.of(found) if found else None

    @strawberry.field(description="Sign-ins, failures and actions on tenants, newest first.")
    async def operator_activity(
        self, slug: str | None = None, first: int = 50
    ) -> list[OperatorActivity]:
        if not 1 <= first <= 200:
            raise UserError("out_of_range", "first must be between 1 and 200", "first")
        rows = await list_activity(entity_id=slug, first=first)
        return [
            OperatorActivity(
                **{**row, "detail": JSON(json.loads(row["detail"])) if row["detail"] else None}
            )
            for row in rows
        ]

    @strawberry.field(description="The plan catalogue.")
    async def plans(self) -> list[Plan]:
        return [Plan(**vars(plan)) for plan in await list_plans()]


@strawberry.type
class PlatformMutation:
    @strawberry.mutation(description="Create a tenant with its first admin.")
    async def create_tenant(self, info: Ctx, input: CreateTenantInput) -> CreateTenantPayload:
        created, errors = await attempt(
            console.create_tenant(
                info.context.operator,
                slug=input.slug,
                name=input.name,
                plan=input.plan,
                admin_email=input.admin_email,
                admin_name=input.admin_name,
                domains=input.domains,
                reuse_purged_slug=input.reuse_purged_slug,
            )
        )
        if not created:
            return CreateTenantPayload(tenant=None, admin=None, user_errors=errors)
        return CreateTenantPayload(
            tenant=PlatformTenant.of(created.tenant),
            admin=FirstAdmin(
                email=created.admin["email"],
                name=created.admin["name"],
                setup_link=created.setup_link.url,
                setup_link_expires_at=created.setup_link.expires_at,
            ),
            user_errors=[],
        )

    @strawberry.mutation(description="Refuse the tenant's requests (403 with the reason).")
    async def suspend_tenant(self, info: Ctx, slug: str, reason: str) -> TenantPayload:
        return _tenant_payload(
            *await attempt(console.suspend_tenant(info.context.operator, slug, reason))
        )

    @strawberry.mutation
    async def resume_tenant(self, info: Ctx, slug: str) -> TenantPayload:
        return _tenant_payload(*await attempt(console.resume_tenant(info.context.operator, slug)))

    @strawberry.mutation(description="Soft-delete: restorable until `purgeAfter`.")
    async def delete_tenant(self, info: Ctx, slug: str, reason: str = "") -> TenantPayload:
        ctx = info.context
        return _tenant_payload(
            *await attempt(
                console.delete_tenant(
                    ctx.operator, slug, grace_days=ctx.delete_grace_days, reason=reason
                )
            )
        )

    @strawberry.mutation(description="Undo a delete within the grace period.")
    async def restore_tenant(self, info: Ctx, slug: str) -> TenantPayload:
        return _tenant_payload(*await attempt(console.restore_tenant(info.context.operator, slug)))

    @strawberry.mutation(
        description="Drop a deleted tenant's data for good (before `purgeAfter` only with force)."
    )
    async def purge_tenant(self, info: Ctx, slug: str, force: bool = False) -> PurgeTenantPayload:
        _, errors = await attempt(console.purge_tenant(info.context.operator, slug, force=force))
        return PurgeTenantPayload(purged=not errors, user_errors=errors)

    @strawberry.mutation
    async def change_plan(self, info: Ctx, slug: str, plan: str) -> TenantPayload:
        return _tenant_payload(
            *await attempt(console.change_plan(info.context.operator, slug, plan))
        )


_LIMITS = Limits(depth=8, aliases=20)

platform_schema = PatoneSchema(
    query=PlatformQuery,
    mutation=PlatformMutation,
    extensions=[
        lambda: QueryLimits(_LIMITS),  # first: nothing after it validates a refused document
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        ArgumentRules,
        PatoneErrors,
    ],
)


def _token_audience(token: str) -> str | None:
    """The audience a token claims, unverified: used only to say why it is refused."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return None
    audience = claims.get("aud") if isinstance(claims, dict) else None
    return audience if isinstance(audience, str) else None


class _PlatformStrawberry(GraphQL[PlatformContext, None]):
    def __init__(self, delete_grace_days: int) -> None:
        super().__init__(platform_schema, graphql_ide=None)
        self.delete_grace_days = delete_grace_days

    async def get_context(self, request: Any, response: Any) -> PlatformContext:
        return PlatformContext(
            operator=request.scope["state"]["operator"],
            delete_grace_days=self.delete_grace_days,
            request=request,
            response=response,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # strawberry answers malformed requests in plain text; ours speak JSON everywhere.
        try:
            response = await self.run(Request(scope=scope, receive=receive))
        except HTTPException as error:
            response = malformed(error)
        await response(scope, receive, send)


class PlatformGraphQL:
    """The ASGI app at /platform/graphql: an operator token, then strawberry."""

    def __init__(self, secret: str, delete_grace_days: int = 30) -> None:
        self.secret = secret
        self.strawberry = _PlatformStrawberry(delete_grace_days)

    async def authenticate(self, scope: Scope) -> Operator | Response:
        if scope.get("state", {}).get("tenant") is not None:
            return refused("not_found", "The platform API is served on the platform's own host.")
        token = bearer_token(scope)
        if token is None:
            return refused("unauthenticated", "Sign in as an operator first.")
        try:
            claims = verify_token(self.secret, token, audience=PLATFORM_AUDIENCE)
        except InvalidToken as error:
            if _token_audience(token) == TENANT_AUDIENCE:
                return refused(
                    "wrong_audience",
                    "This is a company's token; the platform API takes operator tokens only.",
                )
            return refused(error.code, error.message)
        operator = None
        if claims.kind is Kind.operator and claims.subject.isdigit():
            operator = await get_operator(int(claims.subject))
        if operator is None:
            return refused("unauthenticated", "The token's operator is not active.")
        return operator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        found = await self.authenticate(scope)
        if isinstance(found, Response):
            await found(scope, receive, send)
            return
        scope.setdefault("state", {})["operator"] = found
        await self.strawberry(scope, receive, send)


class SignIn:
    """POST /platform/auth/sign-in {"email", "password", "code"}: an operator access token."""

    def __init__(self, secret: str) -> None:
        self.secret = secret

    async def handle(self, request: Request) -> Response:
        if request.scope.get("state", {}).get("tenant") is not None:
            return error_response("not_found", "Operators sign in on the platform's own host.")
        try:
            body = json.loads(await request_body(request, SMALL_BODY))
        except BodyTooLarge as error:
            return user_error_response(error)
        except ValueError:
            return error_response("bad_request", "Send a JSON object.")
        if not isinstance(body, dict):
            return error_response("bad_request", "Send a JSON object.")
        for field, longest in (("email", EMAIL_MAX_LENGTH), ("password", MAX_LENGTH), ("code", 64)):
            if not isinstance(body.get(field), str) or not body[field]:
                return error_response("required", f"{field} is required", field=field)
            if len(body[field]) > longest:
                return error_response(
                    "too_long", f"{field} has more than {longest} characters", field=field
                )
        client = client_ip(request.scope)
        try:
            await ratelimits.check_operator_sign_in(ip=client, email=body["email"])
            operator = await sign_in(body["email"], body["password"], body["code"], ip=client)
        except UserError as error:
            return user_error_response(error)
        token = issue_token(
            self.secret,
            kind=Kind.operator,
            subject=str(operator.id),
            tenant=None,
            ttl=OPERATOR_TOKEN_TTL,
        )
        return JSONResponse(
            {"access_token": token, "token_type": "Bearer", "expires_in": OPERATOR_TOKEN_TTL},
            headers={"Cache-Control": "no-store"},
        )


def platform_routes(secret: str, delete_grace_days: int = 30) -> list[BaseRoute]:
    """The platform API's routes, for `create_app`."""
    return [
        Route("/platform/auth/sign-in", SignIn(secret).handle, methods=["POST"]),
        Route(
            "/platform/graphql", PlatformGraphQL(secret, delete_grace_days), methods=["GET", "POST"]
        ),
    ]
