"""/graphql counts each authenticated request against the caller's and the company's plan."""

from __future__ import annotations

import httpx

from patone.tenants.registry import TenantInfo
from tests.conftest import MakePlan, MakeTenant
from tests.graphql.conftest import token_for

QUERY = {"query": "{ customers { edges { node { id } } } }"}


async def _until_refused(
    client: httpx.AsyncClient, tenant: TenantInfo, token: str, limit: int = 50
) -> tuple[int, httpx.Response | None]:
    for served in range(limit):
        response = await client.post(
            "/graphql",
            json=QUERY,
            headers={"X-Tenant": tenant.slug, "Authorization": f"Bearer {token}"},
        )
        if response.status_code != 200:
            return served, response
        assert "errors" not in response.json()
    return limit, None


async def test_a_small_plan_is_refused_sooner_with_rate_limited_and_retry_after(
    make_plan: MakePlan, make_tenant: MakeTenant, client: httpx.AsyncClient
) -> None:
    small = await make_plan(api_requests_per_minute=3, tenant_api_requests_per_minute=100)
    big = await make_plan(api_requests_per_minute=6, tenant_api_requests_per_minute=100)
    acme = await make_tenant("acme", plan=small)
    bolt = await make_tenant("bolt", plan=big)

    served, refused = await _until_refused(client, acme, await token_for(acme, "dispatcher"))
    assert served == 3 and refused is not None
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    [error] = refused.json()["errors"]
    assert error["extensions"]["code"] == "rate_limited"
    assert error["extensions"]["request_id"] == refused.headers["x-request-id"]
    assert refused.json()["data"] is None

    # Bolt, on the bigger plan, is served more and is untouched by Acme's traffic.
    served, refused = await _until_refused(client, bolt, await token_for(bolt, "dispatcher"))
    assert served == 6 and refused is not None and refused.status_code == 429


async def test_the_companys_budget_is_shared_by_its_callers(
    make_plan: MakePlan, make_tenant: MakeTenant, client: httpx.AsyncClient
) -> None:
    plan = await make_plan(api_requests_per_minute=10, tenant_api_requests_per_minute=4)
    acme = await make_tenant("acme", plan=plan)
    bolt = await make_tenant("bolt", plan=plan)
    first, second = await token_for(acme, "dispatcher"), await token_for(acme, "admin")
    served, _ = await _until_refused(client, acme, first, limit=3)
    assert served == 3
    served, refused = await _until_refused(client, acme, second)
    assert served == 1 and refused is not None and refused.status_code == 429
    # Same plan, other company: a budget of its own.
    served, _ = await _until_refused(client, bolt, await token_for(bolt, "dispatcher"), limit=4)
    assert served == 4


async def test_unauthenticated_requests_spend_no_budget(
    make_plan: MakePlan, make_tenant: MakeTenant, client: httpx.AsyncClient
) -> None:
    acme = await make_tenant("acme", plan=await make_plan(tenant_api_requests_per_minute=2))
    for _ in range(5):
        response = await client.post("/graphql", json=QUERY, headers={"X-Tenant": acme.slug})
        assert response.status_code == 401
    served, _ = await _until_refused(client, acme, await token_for(acme, "dispatcher"), limit=2)
    assert served == 2
