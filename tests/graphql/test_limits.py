"""Depth, alias, token and cost limits, and automatic persisted queries."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator

import httpx
import pytest
from graphql import get_introspection_query

from patone.tenants.registry import TenantInfo
from tests.graphql.conftest import SECRET, Gql, token_for
from tests.support import serve_process


def fan_out(fragments: int, leaf: str = "viewer { tenant }") -> str:
    """`query { ...F<n> }` where each fragment spreads the one before it twice: 2^n leaves."""
    lines = [f"query {{ ...F{fragments} }}", f"fragment F0 on Query {{ {leaf} }}"]
    lines += [
        f"fragment F{i} on Query {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, fragments + 1)
    ]
    return "\n".join(lines)


async def _code(gql: Gql, tenant: TenantInfo, token: str, query: str) -> str:
    result = await gql(tenant, token, query, status=400)
    assert result.get("data") is None, result
    return str(result["errors"][0]["extensions"]["code"])


async def test_too_deep_too_many_aliases_and_too_costly_are_refused(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, _ = two_tenants
    token = await token_for(acme, "dispatcher")
    aliases = " ".join(f"a{i}: viewer {{ tenant }}" for i in range(40))
    result = await gql(acme, token, f"{{ {aliases} }}", status=400)
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
    refused = await gql(acme, token, costly, status=400)
    assert refused["errors"][0]["extensions"]["code"] == "cost_limit_exceeded"
    assert refused.get("data") is None
    cheap = await gql(acme, token, "{ serviceRequests(first: 5) { edges { node { number } } } }")
    assert "errors" not in cheap
    deep = "{ serviceRequests { edges { node { customer { vehicles { id } } } } } }"
    assert "errors" not in await gql(acme, token, deep)
    deeper = '{ node(id: "x") { id ' + "... on ServiceRequest { customer { vehicles { id " * 4
    deeper += "} } } " * 4 + "} }"
    too_deep = await gql(acme, token, deeper, status=400)
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
    assert first.json()["errors"][0]["extensions"]["code"] == "persisted_query_not_found"
    wrong = await client.post(
        "/graphql",
        json={"query": "{ viewer { role } }", "extensions": extensions},
        headers=headers,
    )
    assert wrong.json()["errors"][0]["extensions"]["code"] == "persisted_query_hash_mismatch"
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

    from patone.core.common.permissions import SYSTEM
    from patone.core.identity import users
    from patone.core.identity.tokens import issue_access_token
    from tests.graphql.conftest import SECRET

    partner = await users.create_user(
        acme, SYSTEM, {"email": "club@example.com", "name": "Club", "role": "dispatcher"}
    )
    token = issue_access_token(SECRET, acme, partner.id, allow_list_only=True)
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
        assert code in {"persisted_query_not_allowed", "persisted_query_required"}
    # Another company's allow-list is its own: the same hash is unknown there.
    bolt_partner = await users.create_user(
        bolt, SYSTEM, {"email": "club@example.com", "name": "Club", "role": "dispatcher"}
    )
    bolt_token = issue_access_token(SECRET, bolt, bolt_partner.id, allow_list_only=True)
    elsewhere = await client.post(
        "/graphql",
        json={"extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}}},
        headers={"X-Tenant": bolt.slug, "Authorization": f"Bearer {bolt_token}"},
    )
    assert elsewhere.json()["errors"][0]["extensions"]["code"] == "persisted_query_not_allowed"


async def test_fragment_fan_out_is_refused_by_its_cost(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, _ = two_tenants
    token = await token_for(acme, "dispatcher")
    # 2^40 fields once spread: refused from its forty fragment definitions alone.
    assert await _code(gql, acme, token, fan_out(40)) == "cost_limit_exceeded"
    # Within the limit, the same shape runs (each fragment measured once, not spread).
    answer = await gql(acme, token, fan_out(5))
    assert answer["data"]["viewer"]["tenant"] == acme.slug


async def test_fan_out_of_aliases_is_refused_by_its_alias_count(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, _ = two_tenants
    token = await token_for(acme, "dispatcher")
    many = fan_out(30, leaf="a: __typename")
    assert await _code(gql, acme, token, many) == "alias_limit_exceeded"


async def test_deep_nesting_is_refused_by_its_depth(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, _ = two_tenants
    token = await token_for(acme, "dispatcher")
    deep = "{ " + "a { " * 150 + "b" + " }" * 151
    assert await _code(gql, acme, token, deep) == "depth_limit_exceeded"
    # Depth reached through fragments counts the same.
    chain = ["query { ...F60 }", "fragment F0 on Query { __typename }"]
    chain += [f"fragment F{i} on Query {{ a {{ ...F{i - 1} }} }}" for i in range(1, 61)]
    assert await _code(gql, acme, token, "\n".join(chain)) == "depth_limit_exceeded"


async def test_many_aliases_are_refused_by_their_count(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, _ = two_tenants
    token = await token_for(acme, "dispatcher")
    aliases = "{ " + " ".join(f"a{i}: __typename" for i in range(600)) + " }"
    assert await _code(gql, acme, token, aliases) == "alias_limit_exceeded"


async def test_fragment_cycles_are_refused(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, _ = two_tenants
    token = await token_for(acme, "dispatcher")
    cycle = "query { ...A } fragment A on Query { ...B ...B } fragment B on Query { ...A ...A }"
    assert await _code(gql, acme, token, cycle) == "invalid_document"
    # A cycle at the end of a fan-out: found without spreading the fan-out.
    looped = fan_out(30).replace("fragment F0 on Query {", "fragment F0 on Query { ...F30")
    assert await _code(gql, acme, token, looped) == "invalid_document"


async def test_a_long_document_repeating_one_field_is_refused(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, _ = two_tenants
    token = await token_for(acme, "dispatcher")
    # Within the token limit, but checking that 490 fields of one name merge compares every
    # pair of them.
    repeated = "{ " + " ".join("viewer { tenant }" for _ in range(490)) + " }"
    assert await _code(gql, acme, token, repeated) == "query_too_complex"
    too_many_tokens = "{ " + " ".join(f"f{i}" for i in range(2100)) + " }"
    result = await gql(acme, token, too_many_tokens, status=400)
    assert "more than 2000 tokens" in result["errors"][0]["message"]
    # Comments are no tokens, but reading them costs as much: the text itself is limited.
    padded = "#" * 60_000 + "\n{ __typename }"
    result = await gql(acme, token, padded, status=400)
    assert "more than 50000 code points" in result["errors"][0]["message"]
    assert "errors" not in await gql(acme, token, "#" * 40_000 + "\n{ __typename }")


async def test_graphiql_introspection_passes_the_limits(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, _ = two_tenants
    token = await token_for(acme, "dispatcher")
    result = await gql(acme, token, get_introspection_query(descriptions=True))
    assert "errors" not in result
    assert result["data"]["__schema"]["queryType"]["name"] == "Query"


async def test_an_omitted_page_size_costs_the_default_page(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, _ = two_tenants
    token = await token_for(acme, "dispatcher")
    fields = "edges { node { number status priority createdAt customer { name phone } } }"
    # 20 pages of the default size (50) of 9 fields: about 9,000; with 25, over 10,000.
    fits = "{ " + " ".join(f"p{i}: serviceRequests {{ {fields} }}" for i in range(20)) + " }"
    assert "errors" not in await gql(acme, token, fits)
    written = (
        "{ "
        + " ".join(f"p{i}: serviceRequests(first: 50) {{ {fields} }}" for i in range(25))
        + " }"
    )
    omitted = "{ " + " ".join(f"p{i}: serviceRequests {{ {fields} }}" for i in range(25)) + " }"
    assert await _code(gql, acme, token, written) == "cost_limit_exceeded"
    assert await _code(gql, acme, token, omitted) == "cost_limit_exceeded"
    # A variable left out counts its declared default, or the field's.
    by_variable = (
        "query($n: Int! = 200) { "
        + " ".join(f"p{i}: serviceRequests(first: $n) {{ {fields} }}" for i in range(6))
        + " }"
    )
    assert await _code(gql, acme, token, by_variable) == "cost_limit_exceeded"


async def test_a_backward_page_costs_its_last_like_a_forward_page_its_first(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, _ = two_tenants
    token = await token_for(acme, "dispatcher")
    fields = "edges { node { number } }"
    # 30 aliases of a 200-row page read backwards: about 18,000 > 10,000, as with `first`.
    backwards = "{ " + " ".join(
        f"p{i}: serviceRequests(last: 200) {{ {fields} }}" for i in range(30)
    )
    assert await _code(gql, acme, token, backwards + " }") == "cost_limit_exceeded"
    by_variable = (
        "query($n: Int = 200) { "
        + " ".join(f"p{i}: serviceRequests(first: 5, last: $n) {{ {fields} }}" for i in range(30))
        + " }"
    )
    assert await _code(gql, acme, token, by_variable) == "cost_limit_exceeded"
    small = "{ " + " ".join(f"p{i}: serviceRequests(last: 5) {{ {fields} }}" for i in range(30))
    assert "errors" not in await gql(acme, token, small + " }")


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    """`patone serve` in its own process on the test database: a frozen event loop shows there
    as a health check that does not answer."""
    with serve_process(SECRET) as port:
        yield port


async def test_health_check_answers_while_fan_outs_are_refused(
    server: int, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, _ = two_tenants
    token = await token_for(acme, "dispatcher")
    headers = {"X-Tenant": acme.slug, "Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server}", timeout=30) as client:
        attacks = [
            asyncio.create_task(
                client.post("/graphql", json={"query": fan_out(40 + i)}, headers=headers)
            )
            for i in range(10)
        ]
        await asyncio.sleep(0.05)  # the attacks reach the server first
        # A server busy spreading fragments would not answer at all, let alone in 10 s.
        health = await client.get("/healthz", timeout=10)
        assert health.status_code == 200
        for attack in attacks:
            answer = (await attack).json()
            assert answer["errors"][0]["extensions"]["code"] == "cost_limit_exceeded"
