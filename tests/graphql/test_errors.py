"""An unexpected failure inside a resolver reaches the client as a code and a request id;
its text and traceback only when DEBUG is on."""

from __future__ import annotations

import httpx

from patone.app import create_app
from patone.core.db import engine
from patone.settings import load_settings
from patone.tenants.registry import TenantInfo
from tests.graphql.conftest import SECRET, token_for

QUERY = {"query": "{ customers { edges { node { id } } } }"}


async def _broken_customers(tenant: TenantInfo) -> None:
    # A fault we did not plan for: the table is gone (as after a botched manual change).
    await engine.execute(f'ALTER TABLE "{tenant.schema_name}".customers RENAME TO gone_customers')


async def _ask(tenant: TenantInfo, *, debug: bool) -> httpx.Response:
    app = create_app(load_settings(secret_key=SECRET, base_domain="patone.test", debug=debug))
    token = await token_for(tenant, "dispatcher", email=f"d{int(debug)}@{tenant.slug}.example")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://patone.test") as client:
        return await client.post(
            "/graphql",
            json=QUERY,
            headers={"X-Tenant": tenant.slug, "Authorization": f"Bearer {token}"},
        )


async def test_unexpected_errors_are_masked_unless_debug(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    await _broken_customers(acme)

    quiet = await _ask(acme, debug=False)
    [error] = quiet.json()["errors"]
    assert error["message"] == "Unexpected error."
    assert error["extensions"] == {
        "code": "internal_error",
        "request_id": quiet.headers["x-request-id"],
    }
    assert "customers" not in error["message"] and "Traceback" not in quiet.text
    assert "does not exist" not in quiet.text

    loud = await _ask(acme, debug=True)
    [error] = loud.json()["errors"]
    assert error["message"] == "Unexpected error."
    assert "does not exist" in error["extensions"]["detail"]

    # The other company is unaffected.
    fine = await _ask(bolt, debug=False)
    assert "errors" not in fine.json()


async def test_a_rate_limit_inside_a_resolver_is_rate_limited_with_retry_after() -> None:
    import strawberry

    from patone.core.ratelimits import RateLimited
    from patone.graphql.errors import PatoneErrors

    @strawberry.type
    class Query:
        @strawberry.field
        def busy(self) -> str:
            raise RateLimited(42)

    result = await strawberry.Schema(query=Query, extensions=[PatoneErrors]).execute("{ busy }")
    [error] = result.errors or []
    assert error.extensions == {"code": "RATE_LIMITED", "retry_after": 42}
    assert error.message == "Too many requests. Try again in 42 seconds."
