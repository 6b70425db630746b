"""Automatic persisted queries are each company's own: another company cannot confirm, or run,
a document by its hash."""

from __future__ import annotations

import hashlib

import httpx

from patone.core.runtime.redis import get_redis, tenant_key
from patone.platform import provisioning
from patone.tenants.registry import TenantInfo
from tests.graphql.conftest import token_for


async def test_a_companys_persisted_query_is_unknown_to_another_and_goes_with_its_purge(
    client: httpx.AsyncClient, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    acme_headers = {
        "X-Tenant": acme.slug,
        "Authorization": f"Bearer {await token_for(acme, 'dispatcher')}",
    }
    bolt_headers = {
        "X-Tenant": bolt.slug,
        "Authorization": f"Bearer {await token_for(bolt, 'dispatcher')}",
    }
    # A search for a person by name: its text is what another company must not confirm.
    query = f'{{ customers(search: "Ann Example {acme.slug}") {{ edges {{ node {{ name }} }} }} }}'
    digest = hashlib.sha256(query.encode()).hexdigest()
    by_hash = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}}}

    ran = await client.post("/graphql", json={"query": query, **by_hash}, headers=acme_headers)
    assert "errors" not in ran.json()
    again = await client.post("/graphql", json=by_hash, headers=acme_headers)
    assert "errors" not in again.json()  # Acme's own hash is known to Acme

    probe = await client.post("/graphql", json=by_hash, headers=bolt_headers)
    assert probe.json()["errors"][0]["extensions"]["code"] == "persisted_query_not_found"
    assert "data" not in probe.json() or probe.json()["data"] is None

    redis = get_redis()
    assert await redis.keys(f"apq:{digest}") == []  # nothing shared between companies
    assert await redis.exists(tenant_key(acme.slug, "apq", digest)) == 1
    await provisioning.delete_tenant(acme.slug)
    await provisioning.purge_tenant(acme.slug, force=True)
    assert await redis.exists(tenant_key(acme.slug, "apq", digest)) == 0
