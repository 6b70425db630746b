"""Resolving the tenant of a request: custom domain, subdomain, X-Tenant for the API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from patone.app import create_app
from patone.platform import provisioning
from patone.settings import load_settings
from patone.tenants.registry import TenantInfo
from tests.conftest import MakeTenant
from tests.graphql.conftest import SECRET, token_for
from tests.support import app_client


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # The session fixture already connected Postgres and Redis; no lifespan here.
    async with app_client(SECRET) as c:
        yield c


async def _schema(
    client: httpx.AsyncClient, admin_of: TenantInfo | None = None, **kwargs: Any
) -> httpx.Response:
    """The company overview, as an admin of `admin_of` (the company the request should reach)."""
    headers = dict(kwargs.pop("headers", {}))
    if admin_of is not None:
        headers["Authorization"] = f"Bearer {await token_for(admin_of, 'admin')}"
    return await client.get("/api/tenant", headers=headers, **kwargs)


async def test_subdomain_reaches_the_tenants_own_schema(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    acme = await make_tenant("acme", name="Acme")
    bolt = await make_tenant("bolt", name="Bolt")
    for tenant in (acme, bolt):
        response = await _schema(
            client, tenant, headers={"Host": f"{tenant.slug}.patone.test:8000"}
        )
        assert response.status_code == 200
        body = response.json()
        assert body["tenant"]["slug"] == tenant.slug
        assert body["schema"]["name"] == tenant.schema_name
        assert body["schema"]["role"] == tenant.role_name
        assert "settings" in body["schema"]["tables"]


async def test_custom_domain_wins_over_everything(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    acme = await make_tenant("acme", domains=["help.acme-towing.test"])
    other = await make_tenant("other")
    response = await _schema(
        client, acme, headers={"Host": "help.acme-towing.test", "X-Tenant": other.slug}
    )
    assert response.json()["tenant"]["slug"] == acme.slug


async def test_x_tenant_header_works_for_the_api_only(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    acme = await make_tenant("acme", name="Acme Header")
    api = await _schema(client, acme, headers={"X-Tenant": acme.slug})
    assert api.status_code == 200 and api.json()["tenant"]["slug"] == acme.slug
    page = await client.get("/", headers={"X-Tenant": acme.slug})
    assert page.status_code == 200 and "Acme Header" not in page.text
    assert "Patone Cloud" in page.text


async def test_unknown_tenant_is_a_404_json_error(client: httpx.AsyncClient) -> None:
    for kwargs in (
        {"headers": {"Host": "nobody.patone.test"}},
        {"headers": {"X-Tenant": "nobody"}},
    ):
        response = await _schema(client, **kwargs)
        assert response.status_code == 404
        error = response.json()["error"]
        assert error["code"] == "tenant_not_found" and "nobody" in error["message"]
        assert error["request_id"] == response.headers["x-request-id"]


async def test_suspended_is_403_with_reason_and_deleted_is_404(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant("susp", name="Suspended Co")
    host = {"Host": f"{tenant.slug}.patone.test"}
    await provisioning.suspend_tenant(tenant.slug, "payment overdue")
    response = await client.get("/", headers=host)
    assert response.status_code == 403
    assert response.json()["error"] == {
        "code": "tenant_suspended",
        "message": "Suspended Co is suspended.",
        "reason": "payment overdue",
        "request_id": response.headers["x-request-id"],
    }
    await provisioning.resume_tenant(tenant.slug)
    assert (await client.get("/", headers=host)).status_code == 200
    await provisioning.delete_tenant(tenant.slug)
    assert (await client.get("/", headers=host)).status_code == 404


async def test_bare_domain_and_platform_subdomains_are_the_platform(
    client: httpx.AsyncClient,
) -> None:
    for host in ("patone.test", "www.patone.test", "127.0.0.1:8000"):
        response = await client.get("/", headers={"Host": host})
        assert response.status_code == 200 and "Patone Cloud" in response.text
    response = await _schema(client)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "tenant_required"


async def test_healthz_answers_on_any_host(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"Host": "nobody.patone.test"})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["postgres"]["ok"] and body["checks"]["redis"]["ok"]


async def _websocket(headers: list[tuple[bytes, bytes]]) -> list[dict]:  # type: ignore[type-arg]
    """Open a WebSocket through the middleware stack, speaking raw ASGI."""
    app = create_app(load_settings(base_domain="patone.test"))
    sent: list[dict] = []  # type: ignore[type-arg]
    scope = {
        "type": "websocket",
        "path": "/ws",
        "headers": headers,
        "query_string": b"",
        "scheme": "ws",
        "server": ("127.0.0.1", 80),
    }
    incoming = [{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1000}]

    async def receive() -> dict:  # type: ignore[type-arg]
        return incoming.pop(0)

    async def send(message: dict) -> None:  # type: ignore[type-arg]
        sent.append(message)

    await app.build_middleware_stack()(scope, receive, send)
    return sent


async def test_websockets_resolve_the_tenant_the_same_way(make_tenant: MakeTenant) -> None:
    tenant = await make_tenant("ws")
    unknown = await _websocket([(b"host", b"nobody.patone.test")])
    assert unknown[0] == {"type": "websocket.close", "code": 4404}
    await provisioning.suspend_tenant(tenant.slug, "unpaid")
    suspended = await _websocket([(b"host", f"{tenant.slug}.patone.test".encode())])
    assert suspended[0] == {"type": "websocket.close", "code": 4403}
    await provisioning.resume_tenant(tenant.slug)
    known = await _websocket([(b"x-tenant", tenant.slug.encode())])
    # A known tenant passes resolution and reaches routing (no such route: closed by the router).
    assert known and known[0]["type"] == "websocket.close" and known[0].get("code") != 4404


async def test_ipv6_and_ported_hosts_are_parsed(client: httpx.AsyncClient) -> None:
    for host in ("[::1]:8000", "[::1]", "patone.test.:8000"):
        response = await client.get("/", headers={"Host": host})
        assert response.status_code == 200 and "Patone Cloud" in response.text
