"""Valid documents are parsed and validated once; refused ones are not kept."""

from __future__ import annotations

from patone.graphql.caches import ValidDocuments
from patone.graphql.schema import documents
from patone.tenants.registry import TenantInfo
from tests.graphql.conftest import Gql, token_for
from tests.graphql.test_limits import fan_out


async def test_a_repeated_document_is_served_from_the_cache(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    query = f"{{ viewer {{ tenant }} }} # {acme.slug}"
    for tenant in (acme, bolt):
        token = await token_for(tenant, "dispatcher")
        hits = documents.hits
        answers = [await gql(tenant, token, query) for _ in range(3)]
        # The same text is the same document for every company; the answers are each its own.
        assert [a["data"]["viewer"]["tenant"] for a in answers] == [tenant.slug] * 3
        assert documents.hits >= hits + (2 if tenant is acme else 3)
    assert query in documents


async def test_refused_and_invalid_documents_are_not_kept(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, _ = two_tenants
    token = await token_for(acme, "dispatcher")
    refused = fan_out(30) + f"\n# {acme.slug}"
    invalid = f"{{ noSuchField }} # {acme.slug}"
    for query in (refused, invalid):
        for _ in range(2):
            assert (await gql(acme, token, query, status=400))["errors"]
        assert query not in documents
    # A cached document is still measured with each request's variables.
    page = "serviceRequests(first: $n) { edges { node { number } } }"
    costly = f"query($n: Int!) {{ {page} }} # {acme.slug}"
    assert "errors" not in await gql(acme, token, costly, {"n": 5})
    assert costly in documents
    again = await gql(acme, token, costly, {"n": 10**9}, status=400)
    assert again["errors"][0]["extensions"]["code"] == "cost_limit_exceeded"


def test_the_oldest_document_makes_room() -> None:
    from graphql import parse

    cache = ValidDocuments(maxsize=2)
    for text in ("{ a }", "{ b }"):
        cache.put(text, parse(text))
    assert cache.get("{ a }") is not None  # now the most recently used
    cache.put("{ c }", parse("{ c }"))
    assert "{ a }" in cache and "{ c }" in cache and "{ b }" not in cache
