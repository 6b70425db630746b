"""The committed SDL is the schema the code builds."""

from __future__ import annotations

from patone.graphql.schema import SDL_PATH, sdl
from patone.tenants.registry import TenantInfo
from tests.graphql.conftest import Gql, token_for


def test_schema_graphql_matches_the_code() -> None:
    assert SDL_PATH.read_text() == sdl(), "schema.graphql drifted: run `patone schema`"


def test_limits_and_relay_shapes_are_in_the_schema() -> None:
    text = sdl()
    assert "interface Node" in text and "node(id: ID!): Node" in text
    assert "type ServiceRequestConnection" in text and "pageInfo: PageInfo!" in text
    assert "userErrors: [UserError!]!" in text


async def test_the_validation_cache_hits_for_a_repeated_query(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    """The limits' rules are built once, so the validation cache can key on them."""
    from strawberry.extensions.validation_cache import _get_validate_cache

    acme, _ = two_tenants
    token = await token_for(acme, "dispatcher")
    query = f"{{ viewer {{ tenant }} }} # {acme.slug}"
    cache = _get_validate_cache(512)
    await gql(acme, token, query)
    hits = cache.cache_info().hits
    for _ in range(3):
        assert "errors" not in await gql(acme, token, query)
    assert cache.cache_info().hits == hits + 3
