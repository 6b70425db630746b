"""The committed SDL is the schema the code builds."""

from __future__ import annotations

from patone.graphql.schema import SDL_PATH, sdl


def test_schema_graphql_matches_the_code() -> None:
    assert SDL_PATH.read_text() == sdl(), "schema.graphql drifted: run `patone schema`"


def test_limits_and_relay_shapes_are_in_the_schema() -> None:
    text = sdl()
    assert "interface Node" in text and "node(id: ID!): Node" in text
    assert "type ServiceRequestConnection" in text and "pageInfo: PageInfo!" in text
    assert "userErrors: [UserError!]!" in text
