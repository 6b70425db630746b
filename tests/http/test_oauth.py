"""The OAuth 2.0 endpoints: client credentials for partners, refresh tokens, revocation."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from patone.app import create_app
from patone.core.common import activity
from patone.core.common.permissions import SYSTEM
from patone.core.identity import api_clients, refresh_tokens, revocation, users
from patone.core.identity.tokens import TENANT_AUDIENCE, Kind, verify_token
from patone.core.tables.identity import ApiClientRow
from patone.settings import load_settings
from patone.tenants.registry import TenantInfo
from tests.conftest import MakePlan, MakeTenant
from tests.support import app_client

SECRET = "oauth-test-secret"
FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(SECRET) as client:
        yield client


def _basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


async def _partner(tenant: TenantInfo, *scopes: str) -> tuple[ApiClientRow, str]:
    return await api_clients.create_client(
        tenant, SYSTEM, name=f"Motor club of {tenant.slug}", scopes=scopes or ["requests:read"]
    )


async def _dispatcher(tenant: TenantInfo) -> int:
    user = await users.create_user(
        tenant, SYSTEM, {"email": f"d@{tenant.slug}.example", "name": "D", "role": "dispatcher"}
    )
    return int(user.id)


async def _token(
    client: httpx.AsyncClient, data: dict[str, str], headers: dict[str, str] | None = None
) -> httpx.Response:
    return await client.post("/oauth/token", data=data, headers=headers or {})


async def test_a_partner_gets_a_token_with_basic_or_body_credentials(
    client: httpx.AsyncClient, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    row, secret = await _partner(acme, "requests:read", "requests:write")
    await _partner(bolt, "reports:read")
    assert row.last_used_at is None

    by_basic = await _token(
        client, {"grant_type": "client_credentials"}, _basic(row.client_id, secret)
    )
    assert by_basic.status_code == 200, by_basic.text
    assert by_basic.headers["cache-control"] == "no-store"
    body = by_basic.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert body["scope"] == "requests:read requests:write"
    claims = verify_token(SECRET, body["access_token"], audience=TENANT_AUDIENCE, tenant=acme)
    assert (claims.kind, claims.subject) == (Kind.partner, row.client_id)
    assert claims.scopes == {"requests:read", "requests:write"}

    narrowed = await _token(
        client,
        {
            "grant_type": "client_credentials",
            "client_id": row.client_id,
            "client_secret": secret,
            "scope": "requests:read",
        },
        {"X-Tenant": acme.slug},  # naming the company is allowed when it is the client's own
    )
    assert narrowed.status_code == 200 and narrowed.json()["scope"] == "requests:read"

    listed = {r.client_id: r for r in await api_clients.list_clients(acme, SYSTEM)}
    assert listed[row.client_id].last_used_at is not None
    assert [r.last_used_at for r in await api_clients.list_clients(bolt, SYSTEM)] == [None]
    log, _ = await activity.list_activity(acme, SYSTEM, entity="api_client")
    assert [e.action for e in log].count("token.issued") == 2
    bolt_log, _ = await activity.list_activity(bolt, SYSTEM, entity="api_client")
    assert "token.issued" not in [e.action for e in bolt_log]


async def test_token_endpoint_errors_follow_rfc_6749(
    client: httpx.AsyncClient, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    row, secret = await _partner(acme, "requests:read")
    cid = row.client_id
    grant = {"grant_type": "client_credentials"}

    async def error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
        assert response.status_code == status, response.text
        assert response.json()["error"] == code and response.json()["error_description"]
        assert response.headers["cache-control"] == "no-store"
        return dict(response.headers)

    as_json = await client.post("/oauth/token", json={**grant, "client_id": cid})
    await error(as_json, 400, "invalid_request")
    await error(await _token(client, {"client_id": cid}), 400, "invalid_request")
    await error(await _token(client, {"grant_type": "password"}), 400, "unsupported_grant_type")
    await error(await _token(client, grant), 401, "invalid_client")
    wrong_basic = await error(
        await _token(client, grant, _basic(cid, "nope")), 401, "invalid_client"
    )
    assert wrong_basic["www-authenticate"].startswith("Basic")
    wrong_body = await _token(client, {**grant, "client_id": cid, "client_secret": "nope"})
    await error(wrong_body, 401, "invalid_client")
    unknown = await _token(client, {**grant, "client_id": "pc_nobody", "client_secret": secret})
    await error(unknown, 401, "invalid_client")
    assert unknown.json() == wrong_body.json()  # nothing tells which clients exist
    twice = await _token(
        client, {**grant, "client_id": cid, "client_secret": secret}, _basic(cid, secret)
    )
    await error(twice, 400, "invalid_request")
    malformed = await _token(client, grant, {"Authorization": "Basic %%%"})
    await error(malformed, 401, "invalid_client")
    for scope in ("reports:read", "everything"):
        asked = await _token(client, {**grant, "scope": scope}, _basic(cid, secret))
        await error(asked, 400, "invalid_scope")
    other_company = await _token(client, grant, {**_basic(cid, secret), "X-Tenant": bolt.slug})
    await error(other_company, 401, "invalid_client")

    await api_clients.revoke_client(acme, SYSTEM, row.id)
    await error(await _token(client, grant, _basic(cid, secret)), 401, "invalid_client")
    log, _ = await activity.list_activity(acme, SYSTEM, entity="api_client")
    refusals = [e.after["reason"] for e in log if e.action == "token.refused"]
    assert refusals == ["revoked client", "wrong secret", "wrong secret"]
    assert (await activity.list_activity(bolt, SYSTEM))[0] == []


async def test_revoking_a_client_refuses_the_tokens_it_already_holds(
    client: httpx.AsyncClient, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    mine, my_secret = await _partner(acme)
    theirs, their_secret = await _partner(bolt)
    tokens = {}
    for tenant, row, secret in ((acme, mine, my_secret), (bolt, theirs, their_secret)):
        issued = await _token(
            client, {"grant_type": "client_credentials"}, _basic(row.client_id, secret)
        )
        tokens[tenant.slug] = verify_token(
            SECRET, issued.json()["access_token"], audience=TENANT_AUDIENCE, tenant=tenant
        )
    await api_clients.revoke_client(acme, SYSTEM, mine.id)
    assert await revocation.is_revoked(acme.slug, tokens[acme.slug])
    assert not await revocation.is_revoked(bolt.slug, tokens[bolt.slug])
    log, _ = await activity.list_activity(acme, SYSTEM, entity="api_client")
    assert "api_client.revoked" in [e.action for e in log]


async def test_refresh_grant_rotates_and_reuse_is_refused(
    client: httpx.AsyncClient, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    pair = await refresh_tokens.issue_token_pair(SECRET, acme, await _dispatcher(acme))
    grant = {"grant_type": "refresh_token", "refresh_token": pair.refresh_token}

    elsewhere = await _token(client, grant, {"X-Tenant": bolt.slug})
    assert elsewhere.status_code == 400 and elsewhere.json()["error"] == "invalid_grant"
    nameless = await _token(client, grant)
    assert nameless.status_code == 400 and nameless.json()["error"] == "invalid_request"

    rotated = await _token(client, grant, {"X-Tenant": acme.slug})
    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    assert body["refresh_token"] != pair.refresh_token and body["expires_in"] == 900
    assert verify_token(SECRET, body["access_token"], audience=TENANT_AUDIENCE, tenant=acme)

    reused = await _token(client, grant, {"X-Tenant": acme.slug})
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    child = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
    assert (await _token(client, child, {"X-Tenant": acme.slug})).json()["error"] == "invalid_grant"


async def test_revocation_endpoint_revokes_refresh_and_access_tokens(
    client: httpx.AsyncClient, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    pair = await refresh_tokens.issue_token_pair(SECRET, acme, await _dispatcher(acme))
    kept = await refresh_tokens.issue_token_pair(SECRET, bolt, await _dispatcher(bolt))
    revoked = await client.post(
        "/oauth/revoke", data={"token": pair.refresh_token}, headers={"X-Tenant": acme.slug}
    )
    assert revoked.status_code == 200
    claims = verify_token(SECRET, pair.access_token, audience=TENANT_AUDIENCE, tenant=acme)
    assert await revocation.is_revoked(acme.slug, claims)  # the sign-in's access token too
    with pytest.raises(refresh_tokens.InvalidGrant):
        await refresh_tokens.refresh(SECRET, acme, pair.refresh_token)

    access = verify_token(SECRET, kept.access_token, audience=TENANT_AUDIENCE, tenant=bolt)
    assert not await revocation.is_revoked(bolt.slug, access)
    by_access = await client.post(
        "/oauth/revoke", data={"token": kept.access_token}, headers={"X-Tenant": bolt.slug}
    )
    assert by_access.status_code == 200 and await revocation.is_revoked(bolt.slug, access)
    assert (await refresh_tokens.refresh(SECRET, bolt, kept.refresh_token)).access_token
    nonsense = await client.post(
        "/oauth/revoke", data={"token": "nonsense"}, headers={"X-Tenant": bolt.slug}
    )
    assert nonsense.status_code == 200  # RFC 7009: an invalid token is not an error


async def test_token_requests_count_against_the_clients_api_budget(
    client: httpx.AsyncClient, make_tenant: MakeTenant, make_plan: MakePlan
) -> None:
    plan = await make_plan(api_requests_per_minute=2, tenant_api_requests_per_minute=100)
    acme = await make_tenant("acme", plan=plan)
    bolt = await make_tenant("bolt", plan=plan)
    mine, my_secret = await _partner(acme)
    theirs, their_secret = await _partner(bolt)
    grant = {"grant_type": "client_credentials"}
    answers = [
        (await _token(client, grant, _basic(mine.client_id, my_secret))).status_code
        for _ in range(3)
    ]
    assert answers == [200, 200, 429]
    limited = await _token(client, grant, _basic(mine.client_id, my_secret))
    assert limited.json()["error"] == "rate_limited" and int(limited.headers["retry-after"]) > 0
    other = await _token(client, grant, _basic(theirs.client_id, their_secret))
    assert other.status_code == 200  # another company's client has its own budget


async def test_wrong_secrets_are_counted_per_address_and_never_lock_the_partner_out(
    make_tenant: MakeTenant, make_plan: MakePlan
) -> None:
    plan = await make_plan(
        api_requests_per_minute=5, tenant_api_requests_per_minute=100, sign_ins_per_ip_per_hour=4
    )
    acme, bolt = await make_tenant("acme", plan=plan), await make_tenant("bolt", plan=plan)
    mine, my_secret = await _partner(acme)
    theirs, their_secret = await _partner(bolt)
    app = create_app(load_settings(secret_key=SECRET, base_domain="patone.test"))

    def from_address(ip: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(ip, 4000))
        return httpx.AsyncClient(transport=transport, base_url="http://patone.test")

    grant = {"grant_type": "client_credentials"}
    async with from_address("198.51.100.66") as attacker, from_address("203.0.113.5") as real:
        guesses = [
            (await _token(attacker, grant, _basic(mine.client_id, "guess"))).status_code
            for _ in range(12)
        ]
        # Four wrong secrets an hour from that address, then 429 without checking the secret.
        assert guesses == [401] * 4 + [429] * 8
        # Even the right secret waits there: a guess during the wait teaches nothing.
        right_there = await _token(attacker, grant, _basic(mine.client_id, my_secret))
        assert right_there.status_code == 429
        # The real partner, elsewhere, gets its token and its API calls: its budget is its own.
        token = await _token(real, grant, _basic(mine.client_id, my_secret))
        assert token.status_code == 200, token.text
        query = await real.post(
            "/graphql",
            json={"query": "{ __typename }"},
            headers={
                "Authorization": f"Bearer {token.json()['access_token']}",
                "X-Tenant": acme.slug,
            },
        )
        assert query.status_code == 200, query.text
        # Another company's partner is untouched by either.
        other = await _token(attacker, grant, _basic(theirs.client_id, their_secret))
        assert other.status_code == 200


async def test_bad_refresh_tokens_are_counted_per_address_not_against_the_company(
    make_tenant: MakeTenant, make_plan: MakePlan
) -> None:
    plan = await make_plan(
        api_requests_per_minute=50, tenant_api_requests_per_minute=4, sign_ins_per_ip_per_hour=3
    )
    acme, bolt = await make_tenant("acme", plan=plan), await make_tenant("bolt", plan=plan)
    mine, my_secret = await _partner(acme)
    await _partner(bolt)
    app = create_app(load_settings(secret_key=SECRET, base_domain="patone.test"))
    spray = {"grant_type": "refresh_token", "refresh_token": "prt_made-up"}
    attacker = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("198.51.100.66", 4000)),
        base_url="http://patone.test",
    )
    async with attacker:
        statuses = [
            (await _token(attacker, spray, {"X-Tenant": acme.slug})).status_code for _ in range(8)
        ]
    assert statuses == [400] * 3 + [429] * 5
    # The company's API budget (4 a minute) is untouched: its partner still gets through.
    async with app_client(SECRET) as real:
        grant = {"grant_type": "client_credentials"}
        token = await _token(real, grant, _basic(mine.client_id, my_secret))
        assert token.status_code == 200, token.text
