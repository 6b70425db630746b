"""The platform API at /platform/graphql: operator tokens only, and the tenant life cycle
(create, suspend, resume, delete, purge, change plan) through it, beside another company."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from patone.core.identity import credentials, two_factor
from patone.core.identity.tokens import (
    PLATFORM_AUDIENCE,
    TENANT_AUDIENCE,
    InvalidToken,
    Kind,
    issue_token,
    verify_token,
)
from patone.core.runtime.db import engine
from patone.platform import operators, provisioning
from patone.tenants.registry import TenantInfo, get_tenant
from tests.conftest import unique_slug
from tests.graphql.conftest import SECRET, post_graphql, token_for
from tests.support import resigned

PASSWORD = "correct horse battery staple"

CREATE = """mutation($input: CreateTenantInput!) { createTenant(input: $input) {
    tenant { slug name status plan } admin { email name setupLink setupLinkExpiresAt }
    userErrors { field code message } } }"""
PURGE = """mutation($slug: String!, $force: Boolean! = false) {
    purgeTenant(slug: $slug, force: $force) { purged userErrors { code } } }"""
TENANT_FIELDS = "tenant { slug status statusReason plan purgeAfter } userErrors { field code }"


@pytest.fixture
async def operator() -> AsyncIterator[operators.Operator]:
    two_factor.configure(SECRET)
    email = f"op-{uuid.uuid4().hex[:8]}@platform.example"
    created = await operators.create_operator(email, "Olga Operator", PASSWORD)
    yield created.operator
    await engine.execute("DELETE FROM platform.operators WHERE id = $1", created.operator.id)


@pytest.fixture
async def created_slugs() -> AsyncIterator[list[str]]:
    """Tenants the platform API creates in a test, purged afterwards whatever happened."""
    slugs: list[str] = []
    yield slugs
    for slug in slugs:
        tenant = await get_tenant(slug)
        if tenant is not None:
            if tenant.status != "deleted":
                await provisioning.delete_tenant(slug)
            await provisioning.purge_tenant(slug, force=True)


def operator_token(operator: operators.Operator) -> str:
    return issue_token(SECRET, kind=Kind.operator, subject=str(operator.id), tenant=None)


async def platform(
    client: httpx.AsyncClient,
    token: str,
    query: str,
    variables: dict[str, Any] | None = None,
    status: int = 200,
) -> dict[str, Any]:
    return await post_graphql(client, "/platform/graphql", token, query, variables, status)


async def tenant_api(client: httpx.AsyncClient, tenant: str, token: str) -> httpx.Response:
    return await client.post(
        "/graphql",
        json={"query": "{ viewer { tenant } }"},
        headers={"X-Tenant": tenant, "Authorization": f"Bearer {token}"},
    )


async def test_an_operator_token_is_refused_by_a_tenant_api(
    client: httpx.AsyncClient,
    operator: operators.Operator,
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, _ = two_tenants
    token = operator_token(operator)
    with pytest.raises(InvalidToken):
        verify_token(SECRET, token, audience=TENANT_AUDIENCE, tenant=acme)
    assert verify_token(SECRET, token, audience=PLATFORM_AUDIENCE).kind is Kind.operator
    refused = await tenant_api(client, acme.slug, token)
    assert refused.status_code == 401
    assert refused.json()["errors"][0]["extensions"]["code"] == "unauthenticated"


async def test_a_tenant_admin_token_is_refused_by_the_platform_api(
    client: httpx.AsyncClient,
    operator: operators.Operator,
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, _ = two_tenants
    admin = await token_for(acme, "admin")
    with pytest.raises(InvalidToken):
        verify_token(SECRET, admin, audience=PLATFORM_AUDIENCE)
    refused = await platform(client, admin, "{ tenants { slug } }", status=401)
    error = refused["errors"][0]
    assert error["extensions"]["code"] == "wrong_audience"
    assert "operator tokens only" in error["message"] and refused["data"] is None

    nobody = await client.post("/platform/graphql", json={"query": "{ tenants { slug } }"})
    assert nobody.status_code == 401 and nobody.headers["www-authenticate"] == "Bearer"
    genuine = issue_token(SECRET, kind=Kind.operator, subject=str(operator.id), tenant=None)
    forged = resigned(genuine)  # signed with a key the server never had
    assert (await platform(client, forged, "{ plans { name } }", status=401))["data"] is None
    # On a company's host the platform API is not there at all.
    on_tenant = await client.post(
        "/platform/graphql",
        json={"query": "{ plans { name } }"},
        headers={"Host": f"{acme.slug}.patone.test", "Authorization": f"Bearer {admin}"},
    )
    assert on_tenant.status_code == 404


async def test_an_inactive_operators_token_stops_working(
    client: httpx.AsyncClient, operator: operators.Operator
) -> None:
    token = operator_token(operator)
    assert (await platform(client, token, "{ viewer { name } }"))["data"]["viewer"]["name"]
    await engine.execute("UPDATE platform.operators SET active = false WHERE id = $1", operator.id)
    refused = await platform(client, token, "{ viewer { name } }", status=401)
    assert refused["errors"][0]["message"] == "The token's operator is not active."


async def test_the_platform_api_refuses_fan_outs_and_too_many_aliases(
    client: httpx.AsyncClient, operator: operators.Operator
) -> None:
    from tests.graphql.test_limits import fan_out

    token = operator_token(operator)
    for query, code in (
        (
            fan_out(40, leaf="plans { name }").replace("on Query", "on PlatformQuery"),
            "cost_limit_exceeded",
        ),
        ("{ " + " ".join(f"a{i}: __typename" for i in range(21)) + " }", "alias_limit_exceeded"),
    ):
        refused = await platform(client, token, query, status=400)
        assert refused["errors"][0]["extensions"]["code"] == code
        assert refused.get("data") is None


async def test_plans_and_tenants_are_listed(
    client: httpx.AsyncClient,
    operator: operators.Operator,
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    token = operator_token(operator)
    data = (await platform(client, token, "{ plans { name maxUsers } tenants { slug plan } }"))[
        "data"
    ]
    assert {"name": "free", "maxUsers": 3} in data["plans"]
    listed = {t["slug"]: t["plan"] for t in data["tenants"]}
    assert listed[acme.slug] == listed[bolt.slug] == "standard"


async def test_the_tenant_life_cycle_through_the_platform_api(
    client: httpx.AsyncClient,
    operator: operators.Operator,
    two_tenants: tuple[TenantInfo, TenantInfo],
    created_slugs: list[str],
) -> None:
    _, bystander = two_tenants
    token = operator_token(operator)
    slug = unique_slug("api")
    created_slugs.append(slug)

    bad = await platform(
        client,
        token,
        CREATE,
        {"input": {"slug": slug, "name": "Zed", "adminEmail": "nope", "adminName": "Zoe"}},
    )
    assert bad["data"]["createTenant"]["userErrors"][0]["field"] == "adminEmail"
    assert await get_tenant(slug) is None  # nothing was created

    created = await platform(
        client,
        token,
        CREATE,
        {
            "input": {
                "slug": slug,
                "name": "Zed Recovery",
                "plan": "free",
                "adminEmail": "Zoe@Zed.example",
                "adminName": "Zoe",
            }
        },
    )
    payload = created["data"]["createTenant"]
    link = payload["admin"].pop("setupLink")
    assert payload["admin"].pop("setupLinkExpiresAt")
    assert payload == {
        "tenant": {"slug": slug, "name": "Zed Recovery", "status": "active", "plan": "free"},
        "admin": {"email": "zoe@zed.example", "name": "Zoe"},
        "userErrors": [],
    }
    tenant = await get_tenant(slug)
    assert tenant is not None
    # No password ships: the first admin chooses one through the one-time link.
    assert link.startswith(f"http://{slug}.") and "/setup/" in link
    admin_id = await credentials.complete_setup(
        tenant, link.rsplit("/", 1)[1], "zed recovery hauls 4 trucks"
    )
    signed_in = await credentials.authenticate(
        tenant, "zoe@zed.example", "zed recovery hauls 4 trucks", ip="198.51.100.7"
    )
    assert signed_in.user_id == admin_id and signed_in.role == "admin"
    zed_admin = await token_for(tenant, "dispatcher")
    bystander_token = await token_for(bystander, "dispatcher")
    assert (await tenant_api(client, slug, zed_admin)).status_code == 200

    async def lifecycle(mutation: str) -> dict[str, Any]:
        data = await platform(client, token, f"mutation {{ {mutation} {{ {TENANT_FIELDS} }} }}")
        return data["data"][mutation.split("(")[0]]  # type: ignore[no-any-return]

    suspended = await lifecycle(f'suspendTenant(slug: "{slug}", reason: "invoice unpaid")')
    assert suspended["tenant"]["status"] == "suspended"
    refused = await tenant_api(client, slug, zed_admin)
    assert refused.status_code == 403
    assert refused.json()["error"]["reason"] == "invoice unpaid"
    assert (await tenant_api(client, bystander.slug, bystander_token)).status_code == 200

    assert (await lifecycle(f'resumeTenant(slug: "{slug}")'))["tenant"]["status"] == "active"
    assert (await tenant_api(client, slug, zed_admin)).status_code == 200

    changed = await lifecycle(f'changePlan(slug: "{slug}", plan: "enterprise")')
    assert changed["tenant"]["plan"] == "enterprise"
    unknown = await lifecycle(f'changePlan(slug: "{slug}", plan: "platinum")')
    assert unknown == {"tenant": None, "userErrors": [{"field": "plan", "code": "invalid_choice"}]}

    early = await platform(client, token, PURGE, {"slug": slug})
    assert early["data"]["purgeTenant"] == {
        "purged": False,
        "userErrors": [{"code": "not_deleted"}],
    }

    deleted = await lifecycle(f'deleteTenant(slug: "{slug}", reason: "closed")')
    assert deleted["tenant"]["status"] == "deleted" and deleted["tenant"]["purgeAfter"]
    assert (await tenant_api(client, slug, zed_admin)).status_code == 404
    in_grace = await platform(client, token, PURGE, {"slug": slug})
    assert in_grace["data"]["purgeTenant"]["userErrors"] == [{"code": "grace_period"}]
    purged = await platform(client, token, PURGE, {"slug": slug, "force": True})
    assert purged["data"]["purgeTenant"] == {"purged": True, "userErrors": []}
    assert await get_tenant(slug) is None
    assert await get_tenant(bystander.slug) is not None

    log = await operators.list_activity(operator_id=operator.id)
    assert [row["action"] for row in reversed(log)] == [
        "operator.created",
        "tenant.created",
        "tenant.suspended",
        "tenant.resumed",
        "tenant.plan_changed",
        "tenant.deleted",
        "tenant.purged",
    ]
    assert all(row["entity_id"] == slug for row in log[:-1])
    listed = await platform(
        client, token, f'{{ operatorActivity(slug: "{slug}") {{ action email detail }} }}'
    )
    entries = listed["data"]["operatorActivity"]
    assert entries[-1]["action"] == "tenant.created" and entries[-1]["email"] == operator.email
    assert {"reason": "invoice unpaid"} in [e["detail"] for e in entries]


async def test_bad_lifecycle_input_names_the_field(
    client: httpx.AsyncClient,
    operator: operators.Operator,
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, _ = two_tenants
    token = operator_token(operator)
    blank = await platform(
        client,
        token,
        f'mutation {{ suspendTenant(slug: "{acme.slug}", reason: " ") {{ {TENANT_FIELDS} }} }}',
    )
    assert blank["data"]["suspendTenant"]["userErrors"] == [{"field": "reason", "code": "required"}]
    assert (await get_tenant(acme.slug)).status == "active"  # type: ignore[union-attr]
    taken = await platform(
        client,
        token,
        CREATE,
        {
            "input": {
                "slug": acme.slug,
                "name": "Dup",
                "adminEmail": "a@b.example",
                "adminName": "A",
            }
        },
    )
    assert taken["data"]["createTenant"]["userErrors"][0] == {
        "field": "slug",
        "code": "taken",
        "message": f"slug {acme.slug!r} is already taken",
    }


async def test_a_nul_character_in_an_operators_input_is_refused_and_changes_nothing(
    client: httpx.AsyncClient,
    operator: operators.Operator,
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    token = operator_token(operator)
    refused = await platform(
        client,
        token,
        f'mutation($r: String!) {{ suspendTenant(slug: "{acme.slug}", reason: $r) '
        f"{{ {TENANT_FIELDS} }} }}",
        {"r": "unpaid\x00"},
    )
    extensions = refused["errors"][0]["extensions"]
    assert extensions == {"code": "invalid", "field": "r", "request_id": extensions["request_id"]}
    for tenant in (acme, bolt):
        assert (await get_tenant(tenant.slug)).status == "active"  # type: ignore[union-attr]


async def test_a_purged_slug_is_given_to_a_new_company_only_when_the_operator_says_so(
    client: httpx.AsyncClient,
    operator: operators.Operator,
    created_slugs: list[str],
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    lima, _ = two_tenants
    token = operator_token(operator)
    created_slugs.append(lima.slug)
    await provisioning.delete_tenant(lima.slug)
    await platform(client, token, PURGE, {"slug": lima.slug, "force": True})
    given = {
        "slug": lima.slug,
        "name": "New Lima",
        "adminEmail": "n@lima.example",
        "adminName": "N",
    }
    refused = await platform(client, token, CREATE, {"input": given})
    [error] = refused["data"]["createTenant"]["userErrors"]
    assert (error["field"], error["code"]) == ("slug", "purged_slug")
    assert "reusePurgedSlug" in error["message"]
    assert await get_tenant(lima.slug) is None
    reused = await platform(client, token, CREATE, {"input": {**given, "reusePurgedSlug": True}})
    assert reused["data"]["createTenant"]["userErrors"] == []
    new = await get_tenant(lima.slug)
    assert new is not None and new.id != lima.id and new.name == "New Lima"
    [entry] = [
        row
        for row in await operators.list_activity(operator_id=operator.id)
        if row["action"] == "tenant.created"
    ]
    assert json.loads(entry["detail"])["reused_purged_slug"] is True
