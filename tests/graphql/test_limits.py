"""Depth, alias, token and cost limits, and automatic persisted queries."""

from __future__ import annotations

import hashlib

import httpx

from patone.tenants.registry import TenantInfo
from tests.graphql.conftest import Gql, token_for


async def test_too_deep_too_many_aliases_and_too_costly_are_refused(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, _ = two_tenants
    token = await token_for(acme, "dispatcher")
    aliases = " ".join(f"a{i}: viewer {{ tenant }}" for i in range(40))
    result = await gql(acme, token, f"{{ {aliases} }}")
    assert "aliases" in result["errors"][0]["message"].lower()
    # 30 aliases (the most allowed) of a 200-row page: about 18,000 > 10,000.
    costly = (
        "{ "
        + " ".join(
            f"p{i}: serviceRequests(first: 200) {{ edges {{ node {{ number }} }} }}"
            for i in range(30)
        )
        + " }"
    )
    refused = await gql(acme, token, costly)
    assert refused["errors"][0]["extensions"]["code"] == "COST_LIMIT_EXCEEDED"
    assert refused.get("data") is None
    cheap = await gql(acme, token, "{ serviceRequests(first: 5) { edges { node { number } } } }")
    assert "errors" not in cheap
    deep = "{ serviceRequests { edges { node { customer { vehicles { id } } } } } }"
    assert "errors" not in await gql(acme, token, deep)
    deeper = '{ node(id: "x") { id ' + "... on ServiceRequest { customer { vehicles { id " * 4
    deeper += "} } } " * 4 + "} }"
    too_deep = await gql(acme, token, deeper)
    assert too_deep["errors"]


async def test_automatic_persisted_queries(
    client: httpx.AsyncClient, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, _ = two_tenants
    token = await token_for(acme, "dispatcher")
    headers = {"X-Tenant": acme.slug, "Authorization": f"Bearer {token}"}
    query = f"{{ viewer {{ tenant role }} }} # {acme.slug}"  # a hash no earlier run stored
    digest = hashlib.sha256(query.encode()).hexdigest()
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": digest}}

    first = await client.post("/graphql", json={"extensions": extensions}, headers=headers)
    assert first.json()["errors"][0]["message"] == "PersistedQueryNotFound"
    assert first.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    wrong = await client.post(
        "/graphql",
        json={"query": "{ viewer { role } }", "extensions": extensions},
        headers=headers,
    )
    assert wrong.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_HASH_MISMATCH"
    registered = await client.post(
        "/graphql", json={"query": query, "extensions": extensions}, headers=headers
    )
    assert registered.json()["data"]["viewer"]["tenant"] == acme.slug
    again = await client.post("/graphql", json={"extensions": extensions}, headers=headers)
    assert again.json()["data"]["viewer"] == {"tenant": acme.slug, "role": "dispatcher"}


async def test_an_allow_listed_client_runs_only_registered_documents(
    client: httpx.AsyncClient, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    admin = await token_for(acme, "admin")
    document = "query Who { viewer { tenant role } }"
    registered = await client.post(
        "/graphql",
        json={
            "query": "mutation($n: String!, $d: String!) { registerPersistedDocument("
            "name: $n, document: $d) { persistedDocument { sha256 } userErrors { field } } }",
            "variables": {"n": "who", "d": document},
        },
        headers={"X-Tenant": acme.slug, "Authorization": f"Bearer {admin}"},
    )
    digest = registered.json()["data"]["registerPersistedDocument"]["persistedDocument"]["sha256"]
    assert digest == hashlib.sha256(document.encode()).hexdigest()

    from patone.core import users
    from patone.core.permissions import SYSTEM
    from patone.core.tokens import issue_access_token
    from tests.graphql.conftest import SECRET

    partner = await users.create_user(
        acme, SYSTEM, {"email": "club@example.com", "name": "Club", "role": "dispatcher"}
    )
    token = issue_access_token(SECRET, acme, partner["id"], allow_list_only=True)
    headers = {"X-Tenant": acme.slug, "Authorization": f"Bearer {token}"}

    by_hash = await client.post(
        "/graphql",
        json={"extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}}},
        headers=headers,
    )
    assert by_hash.json()["data"]["viewer"] == {"tenant": acme.slug, "role": "dispatcher"}
    same_text = await client.post("/graphql", json={"query": document}, headers=headers)
    assert same_text.json()["data"]["viewer"]["role"] == "dispatcher"
    for body in (
        {"query": "{ customers { edges { node { name phone } } } }"},
        {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}},
        [{"query": document}],
    ):
        refused = await client.post("/graphql", json=body, headers=headers)
        code = refused.json()["errors"][0]["extensions"]["code"]
        assert code in {"PERSISTED_QUERY_NOT_ALLOWED", "PERSISTED_QUERY_REQUIRED"}
    # Another company's allow-list is its own: the same hash is unknown there.
    bolt_partner = await users.create_user(
        bolt, SYSTEM, {"email": "club@example.com", "name": "Club", "role": "dispatcher"}
    )
    bolt_token = issue_access_token(SECRET, bolt, bolt_partner["id"], allow_list_only=True)
    elsewhere = await client.post(
        "/graphql",
        json={"extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}}},
        headers={"X-Tenant": bolt.slug, "Authorization": f"Bearer {bolt_token}"},
    )
    assert elsewhere.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_ALLOWED"
