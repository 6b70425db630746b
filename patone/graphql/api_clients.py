"""Partners' API clients and token revocation in the API. The rules live in
`patone.core.identity.api_clients` and `patone.core.identity.refresh_tokens`."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types import Info

from patone.core.common.permissions import require
from patone.core.identity import api_clients as service
from patone.core.identity import refresh_tokens
from patone.core.identity.tokens import Kind
from patone.core.runtime.errors import UserError as DomainUserError
from patone.core.tables.identity import ApiClientRow
from patone.graphql.context import Context
from patone.graphql.ids import pk_of
from patone.graphql.parts import part
from patone.graphql.types import Node, UserError, attempt, gid, user_errors
from patone.tenants.registry import TenantInfo


@strawberry.type(description="A partner's OAuth2 client (client credentials at /oauth/token).")
class ApiClient(Node):
    client_id: str
    name: str
    scopes: list[str] = strawberry.field(
        description="What its tokens may do: requests:read, requests:write, reports:read."
    )
    allow_list_only: bool = strawberry.field(
        description="Its tokens may run only the company's registered documents."
    )
    created_at: datetime
    last_used_at: datetime | None = strawberry.field(
        description="When it last got a token or called the API (to the minute)."
    )
    revoked_at: datetime | None

    @classmethod
    def from_row(cls, row: ApiClientRow) -> ApiClient:
        """The row as it is, its id made global."""
        return cls(**{**row.as_dict(), "id": gid("ApiClient", row.id)})


@strawberry.input
class CreateApiClientInput:
    name: str
    scopes: list[str]
    allow_list_only: bool = False


@strawberry.type
class ApiClientPayload:
    api_client: ApiClient | None
    user_errors: list[UserError]


@strawberry.type
class CreateApiClientPayload:
    api_client: ApiClient | None
    client_secret: str | None = strawberry.field(
        description="The client's secret: shown this once, store it now."
    )
    user_errors: list[UserError]


@strawberry.type
class RevokeTokensPayload:
    revoked: bool
    user_errors: list[UserError]


def _tenant(info: Info[Context, None]) -> TenantInfo:
    tenant = info.context.tenant
    assert isinstance(tenant, TenantInfo)
    return tenant


@part("Query", 140)
@strawberry.type
class ApiClientQueries:
    @strawberry.field(description="The company's API clients, revoked ones included.")
    async def api_clients(self, info: Info[Context, None]) -> list[ApiClient]:
        rows = await service.list_clients(_tenant(info), info.context.actor)
        return [ApiClient.from_row(r) for r in rows]


@part("Mutation", 120)
@strawberry.type
class ApiClientMutations:
    @strawberry.mutation(description="Create a partner's API client; its secret is shown once.")
    async def create_api_client(
        self, info: Info[Context, None], input: CreateApiClientInput
    ) -> CreateApiClientPayload:
        made, errors = await attempt(
            service.create_client(
                _tenant(info),
                info.context.actor,
                name=input.name,
                scopes=input.scopes,
                allow_list_only=input.allow_list_only,
            )
        )
        return CreateApiClientPayload(
            api_client=ApiClient.from_row(made[0]) if made else None,
            client_secret=made[1] if made else None,
            user_errors=errors,
        )

    @strawberry.mutation(description="Revoke an API client: its tokens stop working at once.")
    async def revoke_api_client(
        self, info: Info[Context, None], id: strawberry.ID
    ) -> ApiClientPayload:
        try:
            pk = pk_of(id, "ApiClient")
        except DomainUserError as error:
            return ApiClientPayload(api_client=None, user_errors=user_errors(error))
        row, errors = await attempt(service.revoke_client(_tenant(info), info.context.actor, pk))
        return ApiClientPayload(
            api_client=ApiClient.from_row(row) if row else None, user_errors=errors
        )

    @strawberry.mutation(
        description="Sign yourself out everywhere: every token you hold stops working."
    )
    async def sign_out_everywhere(self, info: Info[Context, None]) -> RevokeTokensPayload:
        actor = info.context.actor
        if actor.kind != "user":
            return RevokeTokensPayload(
                revoked=False,
                user_errors=[
                    UserError(code="forbidden", message="only staff users sign out", field=None)
                ],
            )
        await refresh_tokens.revoke_all(info.context.tenant, actor, Kind.staff, actor.id)
        return RevokeTokensPayload(revoked=True, user_errors=[])

    @strawberry.mutation(
        description="Sign a staff user out everywhere (needs users.manage), e.g. a lost phone."
    )
    async def revoke_user_tokens(
        self, info: Info[Context, None], user_id: strawberry.ID
    ) -> RevokeTokensPayload:
        actor = info.context.actor

        async def revoke() -> bool:
            require(actor, "users.manage")
            pk = pk_of(user_id, "User", "userId")
            await refresh_tokens.revoke_all(info.context.tenant, actor, Kind.staff, str(pk))
            return True

        done, errors = await attempt(revoke())
        return RevokeTokensPayload(revoked=bool(done), user_errors=errors)
