"""An API client per test: the real app, real tokens, real database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from patone.core.common.permissions import SYSTEM
from patone.core.identity import users
from patone.core.identity.tokens import issue_access_token
from patone.tenants.registry import TenantInfo
from tests.support import app_client

SECRET = "graphql-test-secret"
Gql = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(SECRET) as client:
        yield client


async def token_for(tenant: TenantInfo, role: str, email: str | None = None) -> str:
    user = await users.create_user(
        tenant,
        SYSTEM,
        {"email": email or f"{role}@{tenant.slug}.example.com", "name": role, "role": role},
    )
    return issue_access_token(SECRET, tenant, user.id)


@pytest.fixture
def gql(client: httpx.AsyncClient) -> Gql:
    async def run(
        tenant: TenantInfo,
        token: str,
        query: str,
        variables: dict[str, Any] | None = None,
        status: int = 200,
    ) -> dict[str, Any]:
        return await post_graphql(
            client, "/graphql", token, query, variables, status, {"X-Tenant": tenant.slug}
        )

    return run


async def post_graphql(
    client: httpx.AsyncClient,
    path: str,
    token: str,
    query: str,
    variables: dict[str, Any] | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """POST a document with a bearer token, check the answer's status, return its JSON."""
    response = await client.post(
        path,
        json={"query": query, "variables": variables or {}},
        headers={**(headers or {}), "Authorization": f"Bearer {token}"},
    )
    assert response.status_code == status, response.text
    return response.json()  # type: ignore[no-any-return]
